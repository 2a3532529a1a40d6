"""Pure parts of preparing a mount: where a detached daemon logs, and store IDs from names."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from omicsfs.backend.models import StoreKind, StoreSummary
from omicsfs.daemon.checks import check_endpoint_url
from omicsfs.daemon.errors import MountError
from omicsfs.daemon.logs import choose_destination, log_file_name, state_dir, syslog_available
from omicsfs.daemon.stores import match_store


def test_log_destination_prefers_the_log_file_then_a_live_syslog_then_the_state_dir(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path / "home")}
    missing = str(tmp_path / "no-log")
    assert choose_destination("/var/log/o.log", "/mnt/o", syslog_socket=missing, env=env).path == Path(
        "/var/log/o.log"
    )
    fallback = choose_destination(None, "/mnt/omics", syslog_socket=missing, env=env)
    assert fallback.path == tmp_path / "state" / "omicsfs" / "mnt-omics.log"
    assert fallback.describe() == str(fallback.path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind(str(tmp_path / "log"))
        assert syslog_available(str(tmp_path / "log"))
        chosen = choose_destination(None, "/mnt/omics", syslog_socket=str(tmp_path / "log"), env=env)
        assert chosen.syslog
        assert chosen.describe() == "syslog (journalctl -t omicsfs)"
    # The socket file left behind by a syslog that has stopped: nobody takes datagrams.
    assert not syslog_available(str(tmp_path / "log"))
    (tmp_path / "plain").write_text("not a socket")
    assert not syslog_available(str(tmp_path / "plain"))


def test_state_dir_follows_xdg_and_ignores_a_relative_value(tmp_path: Path) -> None:
    assert state_dir({"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}) == Path("/x/state/omicsfs")
    assert state_dir({"XDG_STATE_HOME": "rel", "HOME": "/home/u"}) == Path("/home/u/.local/state/omicsfs")
    assert state_dir({"HOME": "/home/u"}) == Path("/home/u/.local/state/omicsfs")
    assert log_file_name("/") == "root.log"
    assert log_file_name("/srv/omics/cohort") == "srv-omics-cohort.log"


def _store(store_id: str, name: str) -> StoreSummary:
    return StoreSummary(id=store_id, arn="", name=name, creation_time=0.0, description="")


def test_stores_are_matched_by_id_then_by_one_name() -> None:
    stores = [_store("1111111111", "alpha"), _store("2222222222", "twin"), _store("3333333333", "twin"),
              _store("4444444444", "1111111111")]  # fmt: skip
    assert match_store(StoreKind.SEQUENCE, "1111111111", stores) == "1111111111"  # an ID wins over a name
    assert match_store(StoreKind.SEQUENCE, "alpha", stores) == "1111111111"
    assert match_store(StoreKind.SEQUENCE, "3333333333", stores) == "3333333333"
    with pytest.raises(MountError, match=r"'twin' names 2 sequence stores: twin \(2222222222\), twin \(3333"):
        match_store(StoreKind.SEQUENCE, "twin", stores)
    with pytest.raises(
        MountError, match=r"--reference-store 'beta': no reference store .* alpha \(1111111111\)"
    ):
        match_store(StoreKind.REFERENCE, "beta", stores)
    many = [_store(f"{index:010d}", f"s{index:02d}") for index in range(20)]
    with pytest.raises(MountError, match=r"s07 \(0000000007\) and 12 more\)$"):
        match_store(StoreKind.SEQUENCE, "nope", many)


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "localhost", "ftp://h:1", "http://", "http:/h"])
def test_endpoint_urls_need_http_or_https(url: str) -> None:
    with pytest.raises(MountError, match="is not an http:// or https:// URL"):
        check_endpoint_url(url)


def test_good_endpoint_urls_pass() -> None:
    for url in (None, "http://127.0.0.1:8080", "https://omics.us-east-1.amazonaws.com"):
        check_endpoint_url(url)
