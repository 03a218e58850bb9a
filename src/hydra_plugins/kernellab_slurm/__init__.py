"""kernellab's SLURM launcher (Hydra discovers launchers in the `hydra_plugins` namespace)."""
