"""SkyPilot-format CSV import: column orders, quoting, CRLF, GCP composition, TPU slices,
monthly billing, user overrides, and the errors for unusable files."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.catalog import builtin_catalog_dir, load_catalog
from provision.errors import InputError

AWS_HEADER = ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,"
              "SpotPrice,Region,AvailabilityZone")


def write(path: Path, text: str, crlf: bool = False) -> Path:
    path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())
    return path


@pytest.fixture(scope="module")
def builtin():
    return load_catalog()


def test_builtin_catalog_reads_every_provider(builtin):
    assert {"aws", "gcp", "lambda", "runpod", "vast", "coreweave", "sakura"} <= set(
        builtin.providers())
    assert len(builtin.offerings) > 5000


def test_aws_p5_row_as_published(builtin):
    rows = [o for o in builtin.offerings
            if o.instance_type == "p5.48xlarge" and o.zone == "use1-az1"]
    assert len(rows) == 1
    p5 = rows[0]
    assert (p5.gpu, p5.gpu_count, p5.price, p5.interconnect, p5.multi_node) == (
        "H100", 8, 98.32, "nvswitch", True)
    assert p5.network_gbps == 3200


def test_gcp_machine_price_includes_its_gpus(builtin):
    a3 = next(o for o in builtin.offerings
              if o.instance_type == "a3-highgpu-8g" and o.zone == "us-central1-a")
    raw = (builtin_catalog_dir() / "gcp_vms.csv").read_text().splitlines()
    vm = next(r for r in raw if r.startswith("a3-highgpu-8g,") and ",us-central1-a," in r)
    gpu = next(r for r in raw if r.startswith(",,,H100,8,") and ",us-central1-a," in r)
    vm_price, gpu_price = float(vm.split(",")[8]), float(gpu.split(",")[-2])
    assert a3.price == pytest.approx(vm_price + gpu_price)
    assert (a3.gpu, a3.gpu_count) == ("H100", 8)


def test_gcp_spot_needs_both_parts(builtin):
    # us-east5-a has a spot price for the a3-ultragpu machine but none for its H200s
    a3u = next(o for o in builtin.offerings
               if o.instance_type == "a3-ultragpu-8g" and o.zone == "us-east5-a")
    assert a3u.spot_price is None and a3u.price is not None


@pytest.mark.parametrize(("name", "chips", "hosts"), [
    ("tpu-v5litepod-8", 8, 1), ("tpu-v5litepod-16", 16, 4), ("tpu-v5p-8", 4, 1),
    ("tpu-v5p-128", 64, 16), ("tpu-v4-8", 4, 1), ("tpu-v6e-256", 256, 64), ("tpu-v2-8", 4, 1),
])
def test_tpu_slice_names_count_chips_and_hosts(builtin, name, chips, hosts):
    o = next(o for o in builtin.offerings if o.instance_type == name)
    assert (o.gpu_count, o.hosts, o.interconnect) == (chips, hosts, "ici")


def test_duplicate_source_rows_are_kept_once(builtin):
    keys = [(o.provider, o.instance_type, o.region, o.zone, o.price, o.spot_price, o.vcpus)
            for o in builtin.offerings]
    assert len(keys) == len(set(keys))


def test_runpod_and_vast_names_resolve_to_the_right_gpu(builtin):
    by_type = {(o.provider, o.instance_type): o for o in builtin.offerings}
    assert by_type[("runpod", "8x_H100-SXM_SECURE")].gpu == "H100"
    assert by_type[("runpod", "8x_H100_SECURE")].gpu == "H100-PCIE"
    assert by_type[("runpod", "8x_H100-NVL_SECURE")].interconnect == "nvlink-pairs"
    assert by_type[("vast", "1x-A100_SXM4-32-65536")].gpu == "A100"  # 40 GB per GpuInfo
    assert by_type[("vast", "1x-H100_SXM-32-65536")].spot_price is None  # 0.00 = none
    assert not by_type[("vast", "8x-H100_SXM-32-65536")].multi_node
    assert by_type[("vast", "8x-H100_SXM-32-65536")].region == "vn-vietnam"


def test_monthly_billing(builtin):
    sakura = next(o for o in builtin.offerings if o.provider == "sakura")
    assert sakura.billing_period == "month"
    assert sakura.price == pytest.approx(16667 / 730)


def test_reads_any_column_order_quotes_and_crlf(tmp_path):
    f = write(tmp_path / "mycloud.csv", (
        "Region,Price,SpotPrice,InstanceType,AcceleratorCount,AcceleratorName,GpuInfo\n"
        '"us-x",12.5,,"big-8",8,H100,"{\'Gpus\': [{\'Name\': \'H100\'}]}"\n'
        "us-x,1.0,0.3,small-1,1,L4,\n"), crlf=True)
    cat = load_catalog([f], builtin=False)
    assert {(o.provider, o.instance_type, o.gpu, o.gpu_count, o.price, o.spot_price)
            for o in cat.offerings} == {
        ("mycloud", "big-8", "H100", 8, 12.5, None), ("mycloud", "small-1", "L4", 1, 1.0, 0.3)}


def test_skypilot_directory_layout(tmp_path):
    (tmp_path / "aws").mkdir()
    write(tmp_path / "aws" / "vms.csv",
          AWS_HEADER + "\np5.48xlarge,H100,8.0,192.0,2048.0,,50.0,10.0,us-east-1,use1-az1\n")
    cat = load_catalog([tmp_path])
    aws = [o for o in cat.offerings if o.provider == "aws"]
    assert len(aws) == 1 and aws[0].price == 50.0  # the user's file replaced the built-in
    assert any(o.provider == "gcp" for o in cat.offerings)  # other providers untouched


def test_own_columns_override_rules(tmp_path):
    f = write(tmp_path / "onprem.csv", (
        "InstanceType,AcceleratorName,AcceleratorCount,Region,Price,SpotPrice,Provider,"
        "BillingPeriod,Interconnect,NetworkGbps,MultiNode,Source\n"
        "dgx-h100,H100,8,tokyo,20000,,onprem,month,nvswitch,3200,true,our invoice\n"))
    (o,) = load_catalog([f], builtin=False).offerings
    assert (o.provider, o.interconnect, o.network_gbps, o.multi_node, o.billing_period,
            o.source) == ("onprem", "nvswitch", 3200, True, "month", "our invoice")


def test_unknown_accelerators_are_counted_not_fatal(tmp_path):
    f = write(tmp_path / "aws_vms.csv", AWS_HEADER + (
        "\ninf2.xlarge,Inferentia2,1.0,4.0,16.0,,0.76,0.2,us-east-1,use1-az1"
        "\nm5.large,,,2.0,8.0,,0.09,,us-east-1,use1-az1\n"))
    cat = load_catalog([f], builtin=False)
    assert cat.offerings == []
    assert cat.skipped["Inferentia2"] == 1 and cat.skipped["(no accelerator)"] == 1


def test_missing_columns_are_an_input_error(tmp_path):
    f = write(tmp_path / "bad.csv", "InstanceType,Price\nx,1\n")
    with pytest.raises(InputError, match=r"bad.csv:1: not a SkyPilot-format catalog: missing "
                                         r"column\(s\) AcceleratorName"):
        load_catalog([f], builtin=False)


def test_bad_numbers_name_file_line_and_column(tmp_path):
    f = write(tmp_path / "aws_vms.csv",
              AWS_HEADER + "\np5.48xlarge,H100,8.0,192,2048,,cheap,,us-east-1,use1-az1\n")
    with pytest.raises(InputError, match=r"aws_vms.csv:2: column Price: expected a number, "
                                         r"got 'cheap'"):
        load_catalog([f], builtin=False)


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_catalog([tmp_path / "nope.csv"])


def test_cache_is_invalidated_when_a_file_changes(tmp_path):
    f = write(tmp_path / "lab.csv", AWS_HEADER + "\nbox,L4,1,4,16,,1.0,,r1,\n")
    assert load_catalog([f], builtin=False).offerings[0].price == 1.0
    assert load_catalog([f], builtin=False).offerings[0].price == 1.0  # from the cache
    write(f, AWS_HEADER + "\nbox,L4,1,4,16,,2.5,,r1,\n")
    assert load_catalog([f], builtin=False).offerings[0].price == 2.5


def test_filter(builtin):
    rows = builtin.filter(gpu="h100", spot=True)
    assert rows and all(o.gpu == "H100" and o.spot_price for o in rows)
    with pytest.raises(InputError, match="unknown accelerator"):
        builtin.filter(gpu="H1000")
