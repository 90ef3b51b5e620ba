"""A machine with only so much memory available, as ganforge reads it from /proc/meminfo."""


def fake_memory(monkeypatch, tmp_path, kilobytes):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: {10 * kilobytes} kB\nMemAvailable: {kilobytes} kB\n")
    monkeypatch.setattr("ganforge.guards.memory.MEMINFO", meminfo)
