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
    assert target_kernel("sobel_x", "vertical").tolist() == NAMED_KERNELS["sobel_x"]
    assert torch.equal(
        target_kernel("sobel_y", "vertical"), target_kernel("sobel_x", "vertical").t()
    )
    assert target_kernel("laplacian", "vertical").sum() == 0
    assert torch.isclose(target_kernel("box_blur", "vertical").sum(), torch.tensor(1.0))


def test_embed_centres_rounding_toward_top_left():
    K = torch.tensor([[-1.0, 1.0]])
    assert embed_kernel(K, (3, 3)).tolist() == [[0, 0, 0], [-1, 1, 0], [0, 0, 0]]
    assert embed_kernel(K, (2, 4)).tolist() == [[0, -1, 1, 0], [0, 0, 0, 0]]


def test_target_uses_the_models_geometry():
    X = torch.rand(6, 8)
    task = make_task(X, torch.tensor([[-1.0, 1.0]]), (3, 3), (1, 1), (2, 2))
    assert task.target.shape == (3, 4)  # ⌊(6-3+2+2)/2⌋ × ⌊(8-3+2+2)/2⌋
