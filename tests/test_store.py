import os
import stat

from styleprobe.store import atomic_write_text


def test_atomic_writes_get_the_permissions_of_an_ordinary_new_file(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_text(path, "{}")
    with open(tmp_path / "plain.json", "w") as fh:  # what the umask gives an ordinary new file
        fh.write("{}")
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain.json").st_mode)
    assert path.read_text() == "{}" and not list(tmp_path.glob(".*.tmp"))
