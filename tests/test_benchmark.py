import json

import pytest

import benchmark
import model


def test_flop_count_follows_the_layer_shapes():
    generator, discriminator = model.build_generator(), model.build_discriminator()
    g = benchmark.layer_macs(generator)
    assert g["g_fc2"] == 1024 * 7 * 7 * 128
    assert g["g_deconv1"] == 7 * 7 * 4 * 4 * 128 * 64  # per input pixel of a transposed conv
    d = benchmark.layer_macs(discriminator)
    assert d["d_conv2"] == 7 * 7 * 4 * 4 * 64 * 128  # per output pixel of a conv
    g_total, d_total = sum(g.values()), sum(d.values())
    flops = benchmark.training_step_flops(generator, discriminator)
    # between "3 passes forward" and "3 forward + twice that backward" of the three networks
    assert 2 * (g_total + 2 * d_total) < flops < 2 * 3 * (g_total + 2 * d_total) + 2 * d_total
    # the augmented loss adds one more pass over a fake batch: forward, weight and input gradients
    # (the input gradients once: d_loss and g_loss send the same gradient through this pass)
    extra = benchmark.training_step_flops(generator, discriminator, augmented=True) - flops
    assert extra == 2 * 3 * d_total


@pytest.mark.slow
def test_benchmark_smoke(tmp_path, mnist_file, capsys, monkeypatch):
    out = tmp_path / "bench.json"
    epoch = {"seconds": 3.0, "epoch_seconds": 4.0, "images_per_second": 9.0, "peak_rss_mb": 1.0}
    monkeypatch.setattr(benchmark, "epoch_run", lambda precision, args: dict(epoch))  # no 2nd run
    sizes, matmul_gflops = [], benchmark.matmul_gflops

    def recorded(size, **kwargs):
        sizes.append(size)
        return matmul_gflops(size, **kwargs)

    monkeypatch.setattr(benchmark, "matmul_gflops", recorded)
    benchmark.main(["--window", "2", "--rounds", "2", "--batch-size", "16",
                    "--precisions", "mixed_bfloat16", "--data", mnist_file, "--matmul-size", "256",
                    "--out", str(out), "--profile", "2", "--epoch-run",
                    "--profile-dir", str(tmp_path / "traces")])  # fmt: skip
    report = json.load(open(out))
    assert [r["precision"] for r in report["results"]] == ["mixed_bfloat16"]
    assert set(report["matmul_gflops"]) == {"float32", "mixed_bfloat16"}
    assert sizes == [256, 256]  # --matmul-size reaches the ceiling's matmuls
    for result in report["results"]:
        assert result["batch_size"] == 16
        for kind in ("step", "loop"):
            times = result[kind]
            assert len(times["ms_windows"]) == 2 and times["images_per_second"] > 0
            assert times["ms_min"] <= times["ms_median"] <= times["ms_max"]
            ceiling = report["matmul_gflops"][result["precision"]]
            achieved = result[f"achieved_gflops_{kind}"]
            assert result[f"utilization_{kind}"] == achieved / ceiling
            fp32 = report["matmul_gflops"]["float32"]
            assert result[f"utilization_{kind}_of_fp32_ceiling"] == achieved / fp32
        assert result["loop_over_step"] == result["loop"]["ms_median"] / result["step"]["ms_median"]
        run = result["epoch_run"]  # against 16-image steps of the windows just before and after
        steps = len(benchmark.load_dataset("mnist", mnist_file)[0]) // 16
        adjacent_seconds = steps * sum(run["adjacent_step_ms"]) / 2 / 1000
        assert abs(run["epoch_over_adjacent_steps"] - 4.0 / adjacent_seconds) < 1e-9
        profile = result["profile"]  # the traced steps' op time, summed by kind
        by_kind = profile["op_ms_by_kind"]
        assert by_kind["matmuls and convolutions"] > 0 and by_kind["Adam updates"] > 0
        assert abs(sum(by_kind.values()) - profile["op_ms_total"]) < 1e-6
        assert any("Conv2DBackpropFilter" in op for op in profile["top_op_types_ms"])
        assert profile["logdir"].startswith(str(tmp_path / "traces"))
    assert report["peak_rss_mb"] > 100 and report["command"].startswith("python benchmark.py")
    printed = capsys.readouterr().out
    assert "loop / step" in printed and "mixed_bfloat16 profile (2 steps" in printed
    for result in report["results"]:
        change = result["epoch_run"]["epoch_over_adjacent_steps"] - 1
        assert f"outputs, peak 1 MB; {change:+.1%} against the step windows just before" in printed


def test_op_kinds_cover_onednn_kernels():
    kinds = {op: benchmark.op_kind(op) for op in (
        "_MklMatMul", "_MklFusedMatMul", "_MklNativeFusedConv2D",
        "_MklNativeConv2DBackpropFilterWithBias", "Conv2DBackpropInput")}  # fmt: skip
    assert set(kinds.values()) == {"matmuls and convolutions"}
    assert benchmark.op_kind("ResourceApplyAdam") == "Adam updates"
    assert benchmark.op_kind("LeakyReluGrad").startswith("other ops")
