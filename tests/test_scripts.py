import os
import shutil

import numpy as np
import pytest
from PIL import Image

import generate_gif
import generate_sample_latent
from utils import GENERATOR_FILE


def test_sweep_script_writes_both_grids(trained_run, tmp_path):
    out = tmp_path / "figures"
    model = os.path.join(trained_run, "model", "infogan_model_generator.keras")
    generate_sample_latent.main(["--model", model, "--out", str(out), "--columns", "5"])
    for name in ("generated_vary_c1.png", "generated_vary_c2.png"):
        image = np.asarray(Image.open(out / name))
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 150
        assert image[..., :3].std() > 10  # digits drawn, not a blank canvas
    assert sorted(os.listdir(out)) == ["generated_vary_c1.png", "generated_vary_c2.png"]


def test_generate_scripts_take_a_run_folder_and_write_into_it(trained_run, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    generate_sample_latent.main(["--model", run, "--columns", "3"])
    figures = os.path.join(run, "figures")
    assert os.path.exists(os.path.join(figures, "generated_vary_c2.png"))
    generate_gif.main(["--figures", figures])
    assert Image.open(os.path.join(run, "gif", "train_result.gif")).n_frames == 2


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such generator file"),
        (b"not a zip", "not a .keras archive"),
        ("truncated", "not a .keras archive"),
    ],
)
def test_sweep_script_rejects_missing_or_broken_models(tmp_path, content, message):
    path = tmp_path / "generator.keras"
    if content == "truncated":
        committed = os.path.join(os.path.dirname(__file__), "..", "model", GENERATOR_FILE)
        path.write_bytes(open(committed, "rb").read()[:100_000])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        generate_sample_latent.main(["--model", str(path), "--out", str(tmp_path / "out")])
    assert message in str(exit_info.value.code)
    assert not (tmp_path / "out").exists()


def test_sweep_script_rejects_a_model_of_another_shape(trained_run, tmp_path):
    discriminator = os.path.join(trained_run, "model", "infogan_model_discriminator.keras")
    with pytest.raises(SystemExit, match="expected an InfoGAN generator"):
        generate_sample_latent.main(["--model", discriminator, "--out", str(tmp_path)])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--low", "2", "--high", "-2"], "--low .* must be below --high"),
        (["--low", "nan"], "must be finite numbers"),
        (["--columns", "1"], "--columns must be in 2..50"),
    ],
)
def test_sweep_script_rejects_bad_options(flags, message):
    with pytest.raises(SystemExit, match=message):
        generate_sample_latent.main(flags)


def write_frame(folder, epoch, shade):
    Image.fromarray(np.full((40, 40), shade, np.uint8)).save(
        folder / f"image_generated_epoch_{epoch}.png"
    )


def test_gif_orders_frames_by_epoch_number(tmp_path):
    for epoch in (1, 2, 10, 11):
        write_frame(tmp_path, epoch, shade=20 * epoch)  # brightness encodes the epoch
    (tmp_path / "image_generated_epoch_x.png").write_bytes(b"ignored: no epoch number")
    out = tmp_path / "gif" / "train.gif"
    generate_gif.main(["--figures", str(tmp_path), "--out", str(out), "--duration", "0.2"])
    gif = Image.open(out)
    shades = []
    for index in range(gif.n_frames):
        gif.seek(index)
        frame = np.asarray(gif.convert("L"))
        shades.append(int(np.median(frame[-20:, :])))  # below the caption band
    assert gif.n_frames == 4
    assert shades == sorted(shades) and shades[0] < shades[1] < shades[2]  # 1, 2, 10, 11
    assert gif.size[1] > 40  # the caption band with the epoch number is on top


def test_gif_without_frames_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        generate_gif.main(["--figures", str(tmp_path), "--out", str(tmp_path / "a.gif")])
    assert "no image_generated_epoch_<N>.png frames" in str(exit_info.value.code)
    assert not (tmp_path / "a.gif").exists()


@pytest.mark.parametrize(
    "flags, message",
    [(["--duration", "nan"], "must be numbers > 0"), (["--last-hold", "0"], "must be numbers > 0")],
)
def test_gif_rejects_bad_options_and_a_folder_as_output(tmp_path, flags, message):
    write_frame(tmp_path, 1, 50)
    with pytest.raises(SystemExit, match=message):
        generate_gif.main(["--figures", str(tmp_path), *flags])
    with pytest.raises(SystemExit, match="is a folder"):
        generate_gif.main(["--figures", str(tmp_path), "--out", str(tmp_path)])


def test_gif_from_a_real_run(trained_run, tmp_path):
    out = tmp_path / "train.gif"
    generate_gif.main(["--figures", os.path.join(trained_run, "figures"), "--out", str(out)])
    assert Image.open(out).n_frames == 2
