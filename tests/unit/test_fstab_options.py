"""The mount(8) helper's translation from ``-o`` options to ``omicsfs mount`` flags (pure)."""

from __future__ import annotations

import pytest

from omicsfs.cli.fstab import HelperError, main, translate


def test_what_mount_passes_by_default_is_a_plain_read_only_mount() -> None:
    # mount(8) adds "rw" whenever "ro" is absent: it must not make the mount writable.
    assert translate("omicsfs", "/mnt/o", ["rw"]) == ["mount", "/mnt/o"]


def test_value_options_become_flags() -> None:
    options = [
        "endpoint_url=http://127.0.0.1:8870", "region=eu-west-1", "profile=omics", "cache_dir=/var/c",
        "cache_size=2G", "cache_dir_size=50G", "uid=1000", "gid=0", "sequence_store=111",
        "sequence_store=222", "reference_store=333", "listing_ttl=60", "metadata_tps=2", "retries=3",
        "retry_delay=0.5", "log_level=debug", "log_file=/var/log/o.log", "allow_other",
    ]  # fmt: skip
    assert translate("omicsfs", "/m", options) == [
        "mount", "/m", "--endpoint-url", "http://127.0.0.1:8870", "--region", "eu-west-1",
        "--profile", "omics", "--cache-dir", "/var/c", "--cache-size", "2G", "--cache-dir-size", "50G",
        "--uid", "1000", "--gid", "0", "--sequence-store", "111", "--sequence-store", "222",
        "--reference-store", "333", "--listing-ttl", "60", "--metadata-tps", "2", "--retries", "3",
        "--retry-delay", "0.5", "--log-level", "debug", "--log-file", "/var/log/o.log", "--allow-other",
    ]  # fmt: skip


def test_mount_and_systemd_options_are_dropped_and_kernel_flags_handed_on() -> None:
    options = ["ro", "_netdev", "nofail", "noauto", "user", "defaults", "x-systemd.automount",
               "x-systemd.mount-timeout=30", "comment=x", "nosuid", "nodev", "noatime"]  # fmt: skip
    assert translate("omicsfs", "/m", options) == ["mount", "/m", "-o", "nosuid,nodev,noatime"]


def test_a_local_source_or_option_mounts_a_data_dir() -> None:
    assert translate("local:/srv/data", "/m", ["rw"]) == ["mount", "/m", "--local", "/srv/data"]
    assert translate("omicsfs", "/m", ["local=/srv/data"]) == ["mount", "/m", "--local", "/srv/data"]


def test_any_other_source_is_a_label() -> None:
    # mount(8) canonicalises a source naming an existing path: "omicsfs" may arrive as /x/omicsfs.
    assert translate("/home/me/omicsfs", "/m", []) == ["mount", "/m"]


def test_read_write_is_asked_for_by_name_and_ro_wins() -> None:
    assert translate("omicsfs", "/m", ["rw", "read_write"]) == ["mount", "/m", "--read-write"]
    assert translate("omicsfs", "/m", ["read_write", "ro"]) == ["mount", "/m"]


def test_user_and_group_names_are_resolved() -> None:
    assert translate("omicsfs", "/m", ["uid=root", "gid=root"]) == ["mount", "/m", "--uid", "0", "--gid", "0"]


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("omicsfs", ["colour=blue"], "unknown option 'colour=blue' (see 'fstab' in omicsfs's README)"),
        ("omicsfs", ["region"], "option region needs a value (region=...)"),
        ("omicsfs", ["allow_other=1"], "option allow_other takes no value (got 'allow_other=1')"),
        ("local:", [], "source local: needs a data dir (local:/path/to/data-dir)"),
        ("local:/a", ["local=/b"], "local= and a local: source cannot be used together"),
        ("omicsfs", ["uid=no-such-user-here"], "uid=no-such-user-here: no such user"),
    ],
)
def test_errors_are_one_line(source: str, options: list[str], message: str) -> None:
    with pytest.raises(HelperError) as caught:
        translate(source, "/m", options)
    assert str(caught.value) == message


def test_sloppy_skips_unknown_options() -> None:
    assert translate("omicsfs", "/m", ["colour=blue", "nodev"], sloppy=True) == ["mount", "/m", "-o", "nodev"]


def test_fake_mount_prints_the_command_and_mounts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["omicsfs", "/m", "-f", "-o", "rw,region=us-east-1,nosuid"]) == 0
    assert capsys.readouterr().err == "mount.fuse.omicsfs: omicsfs mount /m --region us-east-1 -o nosuid\n"


def test_bad_options_exit_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["omicsfs", "/m", "-o", "rw,colour=blue"]) == 1
    assert capsys.readouterr().err == (
        "mount.fuse.omicsfs: unknown option 'colour=blue' (see 'fstab' in omicsfs's README)\n"
    )


def test_namespaces_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["omicsfs", "/m", "-N", "/proc/1/ns/mnt", "-o", "rw"]) == 1
    assert "not supported" in capsys.readouterr().err


def test_auto_unmount_is_a_flag() -> None:
    assert translate("omicsfs", "/m", ["auto_unmount"]) == ["mount", "/m", "--auto-unmount"]
    assert translate("omicsfs", "/m", ["auto-unmount"]) == ["mount", "/m", "--auto-unmount"]


def test_option_names_may_use_dashes_as_the_flags_do() -> None:
    assert translate("omicsfs", "/m", ["cache-size=1G", "allow-other", "read-write", "sequence-store=a"]) == [
        "mount", "/m", "--cache-size", "1G", "--allow-other", "--read-write", "--sequence-store", "a",
    ]  # fmt: skip
    # Dropped and kernel options keep their own spelling.
    assert translate("omicsfs", "/m", ["x-systemd.mount-timeout=30", "nosuid"]) == [
        "mount",
        "/m",
        "-o",
        "nosuid",
    ]


def test_data_plane_options_become_flags() -> None:
    options = ["data_plane=parts", "s3_endpoint_url=http://127.0.0.1:9000"]
    assert translate("omicsfs", "/m", options) == [
        "mount", "/m", "--data-plane", "parts", "--s3-endpoint-url", "http://127.0.0.1:9000",
    ]  # fmt: skip
