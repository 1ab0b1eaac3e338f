"""The measured recipes run in a fresh process and report the copies they make."""

from helpers.datasets import make_digits
from helpers.memory import in_fresh_process
from helpers.recipes import from_tensor_slices_cost, in_memory_fit, memmap_fit, shuffle_buffer_cost


def test_in_memory_fit_reports_its_stages(tmp_path):
    f = make_digits(20_000, tmp_path, progress=False)  # 60 MiB of float32
    r = in_fresh_process(in_memory_fit, f.x_path, f.y_path, 20_000, batch_size=512)
    assert set(r["stages"]) == {"load", "astype / 255", "fit"}
    assert 59 < r["dataset_mb"] < 61 and r["kernel_mb"] > 0
    assert r["peak_anon_mb"] >= r["dataset_mb"]  # the float32 array alone


def test_from_tensor_slices_cost_is_measured(tmp_path):
    f = make_digits(20_000, tmp_path, progress=False)
    r = in_fresh_process(from_tensor_slices_cost, f.x_path, f.y_path, 20_000, batch_size=128)
    assert r["peak_anon_mb"] >= 0.9 * r["dataset_mb"]


def test_memmap_fit_reports_a_peak_far_below_the_data_it_streams(tmp_path):
    f = make_digits(20_000, tmp_path, progress=False)
    r = in_fresh_process(memmap_fit, f.x_path, f.y_path, 20_000, batch_size=128, steps=20)
    assert 59 < r["dataset_mb"] < 61 and r["peak_anon_mb"] > 0


def test_shuffle_buffer_cost_grows_with_the_buffer(tmp_path):
    f = make_digits(20_000, tmp_path, progress=False)
    small = in_fresh_process(shuffle_buffer_cost, f.x_path, f.y_path, 1_000, 128)
    big = in_fresh_process(shuffle_buffer_cost, f.x_path, f.y_path, 15_000, 128)
    image_mb = 15_000 * 28 * 28 * 4 / 2**20
    assert small["peak_anon_mb"] < big["peak_anon_mb"] and big["peak_anon_mb"] > 0.8 * image_mb
    indices = in_fresh_process(shuffle_buffer_cost, f.x_path, f.y_path, 15_000, 128, elements="indices")
    assert indices["bytes_per_element"] < 0.25 * 28 * 28 * 4
