"""A real video visit between two Chromium contexts with fake media: direct, and relay-only
through coturn. Each run happens inside a loopback-only network namespace (``unshare -n``), driven
by ``call_driver.py``; see there for the journey. Needs root (for the namespace), Debian's
Chromium and coturn; if any is missing the test fails, it does not skip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).resolve().parent / "call_driver.py"


@pytest.mark.parametrize("mode", ["direct", "relay"])
def test_video_visit_end_to_end(mode: str, tmp_path: Path) -> None:
    for tool in ("unshare", "ip", "turnserver", "chromium"):
        assert shutil.which(tool), f"{tool} is missing (apt-get install util-linux iproute2 coturn chromium)"
    out = tmp_path / "result.json"
    command = (
        f"ip link set lo up && exec {sys.executable} {DRIVER} --mode {mode} --out {out} --workdir {tmp_path}"
    )
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", command], capture_output=True, timeout=240, check=False
    )
    assert out.exists(), run.stderr.decode()[-4000:]
    result = json.loads(out.read_text())
    assert "error" not in result, result.get("error")

    assert result["device_network_ok"] is True
    assert result["patient_sees_time_as"].endswith(("EST", "EDT")), result["patient_sees_time_as"]
    # Within 5 s of admission, both sides decode the other's video.
    frames = result["first_frame_s"]
    assert frames["clinician"] is not None and frames["clinician"] < 5, frames
    assert frames["patient"] is not None and frames["patient"] < 5, frames
    pairs = result["candidates"]["patient"] + result["candidates"]["clinician"]
    assert pairs, result["candidates"]
    if mode == "relay":  # every selected pair goes through coturn
        assert all(p["local"] == "relay" for p in pairs), pairs
    else:
        assert all(p["local"] == "host" and p["remote"] == "host" for p in pairs), pairs
    assert result["quality"] == "good"  # loopback: no loss, a round trip of a few ms
    assert result["chat_both_ways"] is True
    assert result["share"] == [["screen"], ["camera"]], result["share"]
    assert result["controls"] == [["Unmute", [False, True]], ["Camera on", [False, False]], [True, True]]
    if mode == "direct":  # four in a mesh, one without a camera; links work once
        assert result["mesh_hearing"] == {"clinician": 3, "patient": 3, "guest1": 3, "guest2": 3}
        assert result["mesh_decoding"] == {"clinician": 2, "patient": 2, "guest1": 3, "guest2": 2}
        assert result["link_reuse_refused"] is True and result["after_guests_left"] == 1
    # The dropped signaling came back and media kept flowing, without a page load.
    reconnect = result["reconnect"]
    assert reconnect["same_page"] is True and reconnect["recovered_s"] is not None, reconnect
    assert reconnect["clinician_still_decoding"] is True, reconnect
    # And after the media path itself was down (loopback for 8 s; or the TURN server for 15 s,
    # signaling still up), video flows again on the same page. With TURN down, ICE stays
    # disconnected long enough that the pages restart it.
    dropped = result["network_drop"]
    assert dropped["same_page"] is True and dropped["recovered_s"] is not None, dropped
    if mode == "relay":
        assert dropped["ice_restarts"] >= 1, dropped
    # Hang-up closed the Encounter and the note is on the record.
    assert result["visit_state"] == "finished"
    assert result["encounter"]["status"] == "finished" and result["encounter"]["class"] == "VR"
    assert result["encounter"]["length"]["unit"] == "min"
    assert result["note_plan"] == "Fluids and rest; call back if worse"
    assert result["follow_up_booked"] is True and result["follow_up_for_patient"] is True
    assert result["page_errors"] == [], result["page_errors"]
