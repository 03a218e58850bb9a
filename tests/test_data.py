import torch

from kernellab.data import NAMED_KERNELS, embed_kernel, input_image, make_task, target_kernel


def test_stripes_are_the_books_picture():
    X = input_image(6, 8, [2, 6], "stripes", "vertical")
    expected = torch.ones(6, 8)
    expected[:, 2:6] = 0
    assert torch.equal(X, expected)


def test_horizontal_transposes_image_and_kernel():
    assert torch.equal(
        input_image(6, 8, [2, 6], "stripes", "horizontal"),
        input_image(6, 8, [2, 6], "stripes", "vertical").t(),
    )
    assert target_kernel([[-1, 1]], "horizontal").tolist() == [[-1], [1]]


def test_named_kernels():
    def named(name):
        return target_kernel(NAMED_KERNELS[name], "vertical")

    assert named("sobel_x").tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert torch.equal(named("sobel_y"), named("sobel_x").t())
    assert named("laplacian").sum() == 0
    assert torch.isclose(named("box_blur").sum(), torch.tensor(1.0))


def test_embed_centres_rounding_toward_top_left():
    K = torch.tensor([[-1.0, 1.0]])
    assert embed_kernel(K, (3, 3)).tolist() == [[0, 0, 0], [-1, 1, 0], [0, 0, 0]]
    assert embed_kernel(K, (2, 4)).tolist() == [[0, -1, 1, 0], [0, 0, 0, 0]]


def test_target_uses_the_models_geometry():
    X = torch.rand(6, 8)
    task = make_task(X, torch.tensor([[-1.0, 1.0]]), (3, 3), (1, 1), (2, 2))
    assert task.target.shape == (3, 4)  # ⌊(6-3+2+2)/2⌋ × ⌊(8-3+2+2)/2⌋
