"""One real video visit in two Chromium contexts, run inside a loopback-only network namespace.

``test_video_call.py`` runs this as ``unshare -n sh -c 'ip link set lo up && python call_driver.py'``
so that ICE can only use 127.0.0.1 (FIELD-NOTES: outside a namespace ICE picks the NIC). Inside
the namespace it starts everything itself: coturn (``--mode relay``), a uvicorn server over a
seeded SQLite clinic, and Chromium with fake camera and microphone. It writes what it saw to
``--out`` as JSON, and the test asserts on that; a step that fails writes its error there too.

The journey: the patient signs in, books a slot, runs the device check and checks in; the
clinician signs in and admits her from "Today's visits"; both sides must decode video within
5 s; chat goes both ways; the patient's signaling socket is dropped and the call must recover
without a page load; the clinician hangs up and saves the SOAP note.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "web"))
sys.path.insert(0, str(HERE.parent))  # pages_support imports the suite's conftest helpers

import uvicorn  # noqa: E402
from browser_support import CHROMIUM, CHROMIUM_ARGS, free_port, shot  # noqa: E402
from pages_support import PASSWORD, build_clinic, next_code  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from medweave.audit import AuditService  # noqa: E402
from medweave.db import make_engine  # noqa: E402
from medweave.migrate import upgrade  # noqa: E402
from medweave.records.service import RecordService  # noqa: E402
from medweave.security.crypto import MasterKey  # noqa: E402
from medweave.security.principal import Principal  # noqa: E402
from medweave.telehealth import schedule, visits  # noqa: E402
from medweave.telehealth.availability import Availability, Hours, VisitType  # noqa: E402

CALL_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
TURN_SECRET = "medweave-e2e-turn-secret"
FIRST_FRAME_LIMIT_S = 5.0
NETWORK_DOWN_S = 8.0
TURN_DOWN_S = 15.0  # long enough that ICE stays disconnected past the page's 3 s restart timer


def start_coturn(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """coturn on loopback with REST-API (shared secret) credentials; started with setsid because
    on SIGTERM it also signals its parent's process group (FIELD-NOTES)."""
    log = open(workdir / "coturn.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--min-port=49160",
            "--max-port=49200",
            "--use-auth-secret",
            f"--static-auth-secret={TURN_SECRET}",
            "--realm=medweave.test",
            f"--db={workdir / 'turndb'}",
            "--allow-loopback-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--log-file=stdout",
            "--simple-log",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    time.sleep(0.5)
    if process.poll() is not None:
        raise RuntimeError(f"coturn exited: {(workdir / 'coturn.log').read_text()[-2000:]}")
    return process


def inbound_frames(tab: Any) -> list[int]:
    return [s["framesDecoded"] for s in tab.evaluate("window.medweaveVisit.inboundVideo()")]


def wait_for_frames(tab: Any, *, more_than: int = 0, limit: float = 10.0) -> float | None:
    """Seconds until some inbound video has decoded more than ``more_than`` frames; None if never."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        frames = inbound_frames(tab)
        if frames and max(frames) > more_than:
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def run(mode: str, workdir: Path, result: dict[str, Any]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings: dict[str, Any] = {}
    if mode == "relay":
        turn_port = free_port()
        coturn = start_coturn(turn_port, workdir)
        secret_file = workdir / "turn.secret"
        secret_file.write_text(TURN_SECRET)
        settings = {
            "telehealth_turn_urls": f"turn:127.0.0.1:{turn_port}?transport=udp",
            "telehealth_turn_secret_file": secret_file,
            "telehealth_ice_policy": "relay",
        }
    else:
        coturn = None
    engine = make_engine(f"sqlite:///{workdir / 'medweave.db'}")
    upgrade(engine)
    records = RecordService(
        engine=engine, master=MasterKey.generate(), base_url=f"{url}/fhir", audit=AuditService(engine)
    )
    clinic = build_clinic(records, workdir, base_url=url, enrolled=("grey",), settings=settings)
    grey_user = next(u for u in clinic.identity.list_users() if u.username == "grey")
    everyday = tuple(Hours(clock(0), clock(23, 59), weekday=d) for d in range(7))
    schedule.publish(
        records,
        principal=Principal.internal("e2e"),
        practitioner_id=clinic.practitioner_id,
        availability=Availability("UTC", everyday),
        visit_types=(VisitType("quick", 5, 0, "video"),),
        now=datetime.now(UTC),
    )
    assert grey_user.practitioner_id == clinic.practitioner_id
    server = uvicorn.Server(uvicorn.Config(clinic.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CALL_ARGS, headless=True)
            journey(browser, url, clinic, mode, result, coturn)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if coturn is not None:
            os.killpg(coturn.pid, signal.SIGTERM)
            coturn.wait(timeout=10)


def journey(
    browser: Any,
    url: str,
    clinic: Any,
    mode: str,
    result: dict[str, Any],
    coturn: subprocess.Popen[bytes] | None = None,
) -> None:
    errors: list[str] = []
    # The patient's browser is in New York: the pages show times in her zone, not the clinic's.
    patient_ctx = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="America/New_York")
    clinician_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    patient, clinician = patient_ctx.new_page(), clinician_ctx.new_page()
    for tab in (patient, clinician):
        tab.set_default_timeout(15_000)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # The patient books, runs the device check, and checks in.
    patient.goto(f"{url}/signin")
    patient.get_by_label("Username").fill("alice")
    patient.get_by_label("Password").fill(PASSWORD)
    patient.get_by_role("button", name="Sign in").click()
    patient.get_by_role("navigation", name="Main").get_by_role("link", name="My visits").click()
    patient.get_by_role("link", name="Book a visit").click()
    patient.get_by_label("Clinician").select_option(label="grey")
    patient.get_by_role("button", name="Show free times").click()
    patient.get_by_role("button", name="Show free times").click()  # now with the visit type
    patient.locator("input[name=start]").first.check()
    if mode == "direct":
        shot(patient, "telehealth-booking", docs=True)
    patient.get_by_role("button", name="Book this time").click()
    expect(patient.get_by_role("heading", name="Video visit")).to_be_visible()
    appointment_id = patient.url.rstrip("/").rsplit("/", 1)[1]
    result["appointment"] = appointment_id
    result["patient_sees_time_as"] = patient.locator("time[data-local]").first.inner_text()
    patient.get_by_role("button", name="Check my camera and microphone").click()
    results = patient.locator("#device-results")
    expect(results.locator("[data-check=camera][data-ok=true]")).to_be_visible()
    expect(results.locator("[data-check=network]")).to_be_visible(timeout=10_000)
    result["device_network_ok"] = results.locator("[data-check=network]").get_attribute("data-ok") == "true"
    patient.get_by_role("button", name="Play a test sound").click()
    expect(results.locator("[data-check=speaker][data-ok=true]")).to_be_visible()
    if mode == "direct":
        shot(patient, "telehealth-device-check", docs=True)
    patient.get_by_role("button", name="Check in").click()
    expect(patient.locator("#visit-status")).to_contain_text("waiting room")
    expect(patient.locator("#signal-status")).to_have_text("Connected.")
    patient.evaluate("window.__noReload = true")

    # The clinician signs in and sees her in the waiting room.
    clinician.goto(f"{url}/signin")
    clinician.get_by_label("Username").fill("grey")
    clinician.get_by_label("Password").fill(PASSWORD)
    clinician.get_by_role("button", name="Sign in").click()
    clinician.get_by_label("Code").fill(
        next_code(clinic.identity, clinic.user_ids["grey"], clinic.secrets["grey"])
    )
    clinician.get_by_role("button", name="Continue").click()
    clinician.get_by_role("link", name="Today's visits").click()
    row = clinician.locator(f"tr[data-visit='{appointment_id}']")
    expect(row.locator("[data-state]")).to_have_text("waiting")
    expect(row.locator("[data-waited]")).not_to_be_empty()
    if mode == "direct":
        shot(clinician, "telehealth-waiting-room", docs=True)

    # Admitted: both sides decode video within 5 s.
    admitted_at = time.monotonic()
    row.get_by_role("button", name="Admit").click()
    expect(clinician.locator("#call")).to_be_visible()
    deadline = admitted_at + FIRST_FRAME_LIMIT_S + 5
    first_frames: dict[str, float | None] = {}
    for name, tab in (("clinician", clinician), ("patient", patient)):
        waited = wait_for_frames(tab, limit=max(0.1, deadline - time.monotonic()))
        first_frames[name] = None if waited is None else time.monotonic() - admitted_at
    result["first_frame_s"] = first_frames
    result["links"] = {
        "patient": patient.evaluate("window.medweaveVisit.links()"),
        "clinician": clinician.evaluate("window.medweaveVisit.links()"),
    }
    result["candidates"] = {
        "patient": patient.evaluate("window.medweaveVisit.selectedCandidates()"),
        "clinician": clinician.evaluate("window.medweaveVisit.selectedCandidates()"),
    }
    expect(clinician.locator("#quality")).not_to_have_attribute("data-quality", "unknown", timeout=10_000)
    result["quality"] = clinician.locator("#quality").get_attribute("data-quality")

    # Chat, both ways.
    patient.get_by_role("textbox", name="Message").fill("Can you hear me?")
    patient.get_by_role("button", name="Send").click()
    expect(clinician.locator("#chat-log")).to_contain_text("Can you hear me?")
    clinician.get_by_role("textbox", name="Message").fill("Yes, loud and clear")
    clinician.get_by_role("button", name="Send").click()
    expect(patient.locator("#chat-log")).to_contain_text("Yes, loud and clear")
    result["chat_both_ways"] = True

    # Mute and camera off act on the tracks the others receive, and say so to screen readers.
    tracks = (
        "(() => { const s = document.getElementById('local-video').srcObject;"
        " return [s.getAudioTracks()[0].enabled, s.getVideoTracks()[0].enabled]; })()"
    )
    controls: list[Any] = []
    for name in ("Mute", "Camera off"):
        button = clinician.get_by_role("button", name=name, exact=True)
        button.click()
        pressed = clinician.locator("[aria-pressed=true]")
        controls.append([pressed.last.inner_text(), clinician.evaluate(tracks)])
    clinician.get_by_role("button", name="Unmute").click()
    clinician.get_by_role("button", name="Camera on").click()
    controls.append(clinician.evaluate(tracks))
    result["controls"] = controls
    # Screen share replaces the video each call sends, and stopping it brings the camera back.
    share = clinician.locator("#share")
    share.click()
    expect(share).to_have_attribute("aria-pressed", "true")
    sharing = clinician.evaluate("window.medweaveVisit.sentVideo()")
    share.click()
    expect(share).to_have_attribute("aria-pressed", "false")
    result["share"] = [sharing, clinician.evaluate("window.medweaveVisit.sentVideo()")]
    if mode == "direct":
        shot(clinician, "telehealth-call", docs=True)

    if mode == "direct":
        group_call(browser, clinician, patient, result)

    # The patient's signaling drops mid-call; the page reconnects and the call goes on, no reload.
    before = max(inbound_frames(patient) or [0])
    patient.evaluate("window.medweaveVisit.socket().close(4000, 'network drop')")
    back = time.monotonic() + 15  # (wait_for_function evaluates a string: the page's CSP forbids it)
    while not patient.evaluate("window.medweaveVisit.welcomes >= 2 && window.medweaveVisit.signalingUp"):
        assert time.monotonic() < back, "the signaling socket did not come back"
        time.sleep(0.1)
    recovered = wait_for_frames(patient, more_than=before + 10, limit=10)
    result["reconnect"] = {
        "recovered_s": recovered,
        "same_page": patient.evaluate("window.__noReload === true"),
        "ice_restarts": patient.evaluate("window.medweaveVisit.iceRestarts"),
    }
    clinician_before = max(inbound_frames(clinician) or [0])
    result["reconnect"]["clinician_still_decoding"] = (
        wait_for_frames(clinician, more_than=clinician_before + 10, limit=10) is not None
    )

    # Then the media path itself goes away for a few seconds: directly, loopback goes down in this
    # namespace (signaling too); relayed, the TURN server stops answering (SIGSTOP) while
    # signaling stays up, so ICE disconnects, the offerer restarts it, and video flows again;
    # all without a page load.
    before = max(inbound_frames(patient) or [0])
    restarts_before = patient.evaluate("window.medweaveVisit.iceRestarts") + clinician.evaluate(
        "window.medweaveVisit.iceRestarts"
    )
    if coturn is None:
        subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
        time.sleep(NETWORK_DOWN_S)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    else:
        os.kill(coturn.pid, signal.SIGSTOP)
        time.sleep(TURN_DOWN_S)
        os.kill(coturn.pid, signal.SIGCONT)
    outage_end = time.monotonic()
    resumed = wait_for_frames(patient, more_than=before + 10, limit=30)
    result["network_drop"] = {
        "recovered_s": None if resumed is None else time.monotonic() - outage_end,
        "same_page": patient.evaluate("window.__noReload === true"),
        "ice_restarts": patient.evaluate("window.medweaveVisit.iceRestarts")
        + clinician.evaluate("window.medweaveVisit.iceRestarts")
        - restarts_before,
        "ice_states": {
            "patient": patient.evaluate("window.medweaveVisit.iceStates"),
            "clinician": clinician.evaluate("window.medweaveVisit.iceStates"),
        },
        "links": clinician.evaluate("window.medweaveVisit.links()"),
    }

    # Hang up: the Encounter closes and the note is saved.
    clinician.get_by_role("button", name="End visit").click()
    expect(patient.locator("#visit-status")).to_have_text("This visit has ended.")
    clinician.get_by_label("Subjective").fill("Two days of sore throat, no fever")
    clinician.get_by_label("Objective").fill("Well on video; speaking full sentences")
    clinician.get_by_label("Assessment").fill("Viral pharyngitis likely")
    clinician.get_by_label("Plan").fill("Fluids and rest; call back if worse")
    clinician.get_by_role("button", name="Save note").click()
    expect(clinician.get_by_label("Plan")).to_have_value("Fluids and rest; call back if worse")
    # A follow-up is booked from the note, for the same patient with the same clinician.
    clinician.get_by_role("link", name="Book a follow-up").click()
    clinician.get_by_role("button", name="Show free times").click()
    clinician.locator("input[name=start]").first.check()
    clinician.get_by_role("button", name="Book this time").click()
    expect(clinician.get_by_role("heading", name="Visit booked")).to_be_visible()
    result["follow_up_booked"] = True
    visit = visits.load(clinic.records.engine, appointment_id)
    result["visit_state"] = visit.state
    internal = Principal.internal("e2e")
    encounter = clinic.records.read(principal=internal, res_type="Encounter", res_id=visit.encounter_id).body
    result["encounter"] = {
        "status": encounter["status"],
        "class": encounter["class"]["code"],
        "length": encounter.get("length"),
    }
    note = visits.read_note(clinic.records, principal=internal, visit=visit)
    result["note_plan"] = note.plan if note else None
    upcoming = visits.for_patient(clinic.records.engine, clinic.patient_id, since=datetime.now(UTC))
    result["follow_up_for_patient"] = any(
        v.appointment_id != appointment_id
        and v.practitioner_id == clinic.practitioner_id
        and v.status == "booked"
        for v in upcoming
    )
    result["page_errors"] = [e for e in errors if "404" not in e]
    patient_ctx.close()
    clinician_ctx.close()


def decoding_peers(tab: Any) -> int:
    return sum(1 for frames in inbound_frames(tab) if frames > 0)


def hearing_peers(tab: Any) -> int:
    return sum(1 for s in tab.evaluate("window.medweaveVisit.inboundAudio()") if s["packetsReceived"] > 0)


NO_CAMERA = """
(() => {
  const devices = navigator.mediaDevices;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) =>
    constraints && constraints.video
      ? Promise.reject(new DOMException("Requested device not found", "NotFoundError"))
      : original(constraints);
})();
"""


def group_call(browser: Any, clinician: Any, patient: Any, result: dict[str, Any]) -> None:
    """The clinician invites an interpreter and a family member with one-time links: a mesh of
    four. The interpreter has no camera (their browser refuses video): everyone still hears
    everyone, the interpreter sees the three others, and the others see each other. A link works
    once."""
    guests = []
    links = []
    for label in ("Interpreter", "Daughter"):
        clinician.get_by_label("Who (shown to the others)").fill(label)
        clinician.get_by_role("button", name="Make a one-time link").click()
        expect(clinician.get_by_label(f"Link for {label}")).to_be_visible()
        links.append(clinician.get_by_label(f"Link for {label}").input_value())
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        if label == "Interpreter":
            context.add_init_script(NO_CAMERA)
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        tab.goto(links[-1])
        expect(tab.locator("#call")).to_be_visible()
        guests.append((context, tab))
    tabs = {"clinician": clinician, "patient": patient, "guest1": guests[0][1], "guest2": guests[1][1]}
    deadline = time.monotonic() + 15
    wanted = {"clinician": 2, "patient": 2, "guest1": 3, "guest2": 2}
    while time.monotonic() < deadline and (
        any(decoding_peers(tabs[n]) < k for n, k in wanted.items())
        or min(hearing_peers(t) for t in tabs.values()) < 3
    ):
        time.sleep(0.2)
    result["mesh_decoding"] = {name: decoding_peers(t) for name, t in tabs.items()}
    result["mesh_hearing"] = {name: hearing_peers(t) for name, t in tabs.items()}
    shot(clinician, "telehealth-group-call", docs=True)
    reused = browser.new_context()
    again = reused.new_page()
    again.goto(links[0])
    expect(again.locator("#join-status")).to_contain_text("already used")
    result["link_reuse_refused"] = True
    reused.close()
    for context, _tab in guests:
        context.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and clinician.evaluate("window.medweaveVisit.links().length") != 1:
        time.sleep(0.2)
    result["after_guests_left"] = clinician.evaluate("window.medweaveVisit.links().length")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("direct", "relay"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    result: dict[str, Any] = {"mode": args.mode}
    try:
        run(args.mode, args.workdir, result)
    except Exception:
        result["error"] = traceback.format_exc()
    args.out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
