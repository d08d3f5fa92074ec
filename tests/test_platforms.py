"""The Windows and macOS branches, checked on Linux by selecting each platform: folders, nvcc and MSVC
discovery, the command channel without Unix sockets, loopMIDI-style port names, the macOS hotkey message."""
from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

import muse_bridge.command_socket as channel_module
from engine.folders import cache_folder, config_folder
from kernels.wkv7_cuda import _why_not_buildable, find_nvcc, missing_host_compiler
from muse_bridge.command_socket import CommandSocket, send_command
from muse_bridge.commands import Command
from muse_bridge.ports import PortNotFoundError, find_port
from muse_bridge.settings import default_settings_path, style_folder
from ui.hotkey import accessibility_problem

ROAMING, LOCAL = r"C:\Users\ada\AppData\Roaming", r"C:\Users\ada\AppData\Local"


@pytest.fixture
def windows_folders(monkeypatch):
    # platformdirs reads Windows' known folders from these when it cannot ask Windows itself
    monkeypatch.setenv("WIN_PD_OVERRIDE_APPDATA", ROAMING)
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", LOCAL)
    monkeypatch.delenv("MUSE_BRIDGE_SETTINGS", raising=False)


def test_settings_and_styles_stay_where_users_have_them_on_each_platform(windows_folders, monkeypatch):
    # Windows: %APPDATA%\muse-bridge, roaming, no author folder (where version 0.1 kept them)
    assert str(default_settings_path("win32")).replace("/", "\\") == ROAMING + r"\muse-bridge\settings.json"
    assert str(config_folder("win32")).replace("/", "\\") == ROAMING + r"\muse-bridge"
    assert str(cache_folder("win32")).replace("/", "\\").startswith(LOCAL + r"\muse-bridge")
    # macOS: Application Support for settings, Caches for caches
    home = Path.home()
    assert default_settings_path("darwin") == home / "Library/Application Support/muse-bridge/settings.json"
    assert cache_folder("darwin") == home / "Library/Caches/muse-bridge"
    # Linux: XDG, with its variables
    monkeypatch.setenv("XDG_CONFIG_HOME", "/xdg/config")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg/cache")
    assert default_settings_path("linux") == Path("/xdg/config/muse-bridge/settings.json")
    assert cache_folder("linux") == Path("/xdg/cache/muse-bridge")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_settings_path("linux") == home / ".config/muse-bridge/settings.json"
    assert style_folder(default_settings_path("linux")) == home / ".config/muse-bridge/styles"
    monkeypatch.setenv("MUSE_BRIDGE_SETTINGS", "/elsewhere/s.json")
    assert default_settings_path("win32") == Path("/elsewhere/s.json")


def fake_toolkit(root: Path, name: str) -> Path:
    nvcc = root / "bin" / name
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    return nvcc


def test_nvcc_is_found_through_cuda_home_cuda_path_or_path_on_each_platform(tmp_path):
    windows_toolkit = fake_toolkit(tmp_path / "CUDA" / "v12.8", "nvcc.exe")
    nowhere = lambda name: None   # noqa: E731
    # Windows: nvcc.exe, under CUDA_PATH (what the CUDA installer sets) or CUDA_HOME
    assert find_nvcc("win32", {"CUDA_PATH": str(windows_toolkit.parent.parent)}, nowhere) == windows_toolkit
    assert find_nvcc("win32", {"CUDA_HOME": str(windows_toolkit.parent.parent)}, nowhere) == windows_toolkit
    # ... and not bin/nvcc, which is Linux's name
    assert find_nvcc("linux", {"CUDA_PATH": str(windows_toolkit.parent.parent)}, nowhere) != windows_toolkit
    linux_toolkit = fake_toolkit(tmp_path / "cuda", "nvcc")
    assert find_nvcc("linux", {"CUDA_HOME": str(linux_toolkit.parent.parent)}, nowhere) == linux_toolkit
    on_path = lambda name: str(windows_toolkit) if name == "nvcc.exe" else None   # noqa: E731
    assert find_nvcc("win32", {}, on_path) == windows_toolkit


def test_a_missing_cl_exe_is_named_with_the_fix_in_the_one_warning(tmp_path):
    toolkit = fake_toolkit(tmp_path / "CUDA", "nvcc.exe")
    env = {"CUDA_PATH": str(toolkit.parent.parent)}
    nothing_on_path = lambda name: None   # noqa: E731
    why = _why_not_buildable("win32", env, nothing_on_path, cuda=True)
    assert "cl.exe" in why and "Developer Command Prompt" in why and "Build Tools" in why
    with_msvc = lambda name: r"C:\VS\cl.exe" if name == "cl" else None   # noqa: E731
    assert missing_host_compiler("win32", with_msvc) is None
    assert missing_host_compiler("linux", nothing_on_path) is None
    assert "nvcc was not found" in _why_not_buildable("win32", {}, nothing_on_path, cuda=True)


def test_the_command_channel_works_over_loopback_tcp_where_there_are_no_unix_sockets(tmp_path, monkeypatch):
    monkeypatch.setattr(channel_module, "_unix", lambda: False)   # as on Windows before AF_UNIX
    got, quit_asked = [], threading.Event()
    path = tmp_path / "muse-bridge.port"
    server = CommandSocket(got.append, quit_asked.set, path=path).start()
    try:
        assert path.read_text().isdigit()                      # the port number, in the file
        assert send_command("answer", path) == "ok" and got == [Command.ANSWER]
        with pytest.raises(ValueError, match="unknown command 'nonsense'"):
            send_command("nonsense", path)
        assert send_command("quit", path) == "ok" and quit_asked.is_set()
    finally:
        server.close()
    assert not path.exists()


def test_ports_are_found_by_loopmidi_style_names():
    # WinMM lists loopMIDI's ports with an index after the name
    available = ["Microsoft GS Wavetable Synth 0", "Muse In 1", "Muse Out 2", "loopMIDI Port 3"]
    assert find_port("input", "Muse In", available) == "Muse In 1"
    assert find_port("output", "muse out", available) == "Muse Out 2"
    assert find_port("input", "Muse In 1", available) == "Muse In 1"
    with pytest.raises(PortNotFoundError, match="Muse Thru"):
        find_port("input", "Muse Thru", available)
    with pytest.raises(PortNotFoundError):
        find_port("input", "Muse", available)   # two ports match: which is meant is not guessed


def test_a_hotkey_without_the_macos_accessibility_permission_says_why_and_how_to_fix_it():
    untrusted, trusted = type("Listener", (), {"IS_TRUSTED": False})(), type("Listener", (), {"IS_TRUSTED": True})()
    problem = accessibility_problem(untrusted, "darwin")
    assert "Accessibility" in problem and "Privacy & Security" in problem and "Suggest button" in problem
    assert accessibility_problem(trusted, "darwin") is None
    assert accessibility_problem(untrusted, "linux") is None   # only macOS asks
