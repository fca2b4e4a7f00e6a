// The video visit: device check, waiting-room chat, and a WebRTC mesh of up to four browsers.
//
// Signaling is the visit's WebSocket (see medweave.telehealth.signaling for the messages).
// Media goes browser to browser, encrypted with DTLS-SRTP (WebRTC allows nothing else).
// In each pair of peers the one with the smaller peer id makes the offers, so two browsers never
// offer at once. If the socket drops, the page fetches a new room token and reconnects with
// "resume": the server kept its place, so the calls go on, and the offerer restarts ICE to be sure.
// If ICE fails (the network changed), the offerer restarts ICE; the other side asks it to.
(() => {
  "use strict";
  const root = document.getElementById("visit");
  if (!root) return;
  const visitId = root.dataset.visit;
  const role = root.dataset.role;
  let state = root.dataset.state;
  const $ = (id) => document.getElementById(id);
  const statusLine = $("visit-status");
  const signalStatus = $("signal-status");

  // -- device check --------------------------------------------------------------------------------
  const results = $("device-results");
  const report = (name, ok, detail) => {
    if (!results) return;
    let li = results.querySelector(`[data-check="${name}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.check = name;
      results.appendChild(li);
    }
    li.dataset.ok = ok ? "true" : "false";
    li.textContent = `${ok ? "✓" : "✗"} ${detail}`;
  };

  async function deviceCheck() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      $("preview").srcObject = stream;
      report("camera", stream.getVideoTracks().length > 0, "Camera works: you should see yourself.");
      report("microphone", stream.getAudioTracks().length > 0, "Microphone works: the level moves when you speak.");
      const audio = new AudioContext();
      const analyser = audio.createAnalyser();
      audio.createMediaStreamSource(stream).connect(analyser);
      const data = new Uint8Array(analyser.fftSize);
      const meter = $("mic-level");
      const tick = () => {
        analyser.getByteTimeDomainData(data);
        let peak = 0;
        for (const v of data) peak = Math.max(peak, Math.abs(v - 128) / 128);
        meter.value = peak;
        requestAnimationFrame(tick);
      };
      tick();
    } catch (e) {
      report("camera", false, `Camera or microphone not available (${e.name}). Check the browser's permission.`);
    }
    await connectionCheck();
  }

  async function connectionCheck() {
    try {
      const pass = await roomPass();
      const pc = new RTCPeerConnection(pass.rtc);
      const kinds = new Set();
      pc.createDataChannel("check");
      const done = new Promise((resolve) => {
        pc.onicecandidate = (e) => (e.candidate ? kinds.add(e.candidate.type) : resolve());
        setTimeout(resolve, 4000);
      });
      await pc.setLocalDescription(await pc.createOffer());
      await done;
      pc.close();
      const found = [...kinds].join(", ") || "none";
      report("network", kinds.size > 0, `Connection check: ${kinds.size ? "ready" : "no route found"} (candidates: ${found}).`);
    } catch (e) {
      report("network", false, "Connection check failed: the visit server could not be reached.");
    }
  }

  if ($("device-start")) $("device-start").addEventListener("click", deviceCheck);
  if ($("speaker-test")) {
    $("speaker-test").addEventListener("click", () => {
      const audio = new AudioContext();
      const tone = audio.createOscillator();
      tone.frequency.value = 440;
      tone.connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 1);
      report("speaker", true, "Test sound played: if you heard a tone, your speaker works.");
    });
  }

  // -- signaling -----------------------------------------------------------------------------------
  let ws = null;
  let me = null;
  let rtc = null;
  let ended = false;
  let retryDelay = 500;
  let fullSince = null;
  const FULL_RETRY_MS = 20000;
  const members = new Map(); // peer -> {name, role}
  const links = new Map(); // peer -> {pc, figure, video, restartTimer}
  let localStream = null;
  let screenTrack = null;

  async function roomPass() {
    const r = await fetch(`/visits/${visitId}/room`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`room ${r.status}`);
    return r.json();
  }

  const send = (msg) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  };

  async function connect() {
    if (ended) return;
    let pass;
    try {
      pass = await roomPass();
    } catch (e) {
      signalStatus.textContent = "Cannot reach the visit; trying again…";
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 5000);
      return;
    }
    rtc = pass.rtc;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/visits/${visitId}/signal`);
    ws = socket;
    socket.onopen = () => socket.send(JSON.stringify({ type: "hello", token: pass.token, resume: me }));
    socket.onmessage = (e) => onMessage(JSON.parse(e.data));
    socket.onclose = (e) => {
      if (ws !== socket) return;
      signalStatus.textContent = "Connection to the visit lost; reconnecting…";
      api.signalingUp = false;
      // A full call (4409) may only be holding the place of someone who just dropped (kept for
      // 15 s in case they come back): keep trying for a little longer than that.
      if (e.code === 4409 && !ended) {
        fullSince = fullSince || Date.now();
        if (Date.now() - fullSince < FULL_RETRY_MS) {
          signalStatus.textContent = "The call is full; waiting for a place…";
          setTimeout(connect, 2000);
          return;
        }
      }
      if (ended || [4401, 4403, 4409].includes(e.code)) {
        if (!ended) signalStatus.textContent = e.reason || "You cannot join this visit now.";
        return;
      }
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 5000);
    };
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "welcome": {
        const resumed = me !== null && me === msg.peer;
        if (resumed) {
          // Whoever left while this page was away is gone: it heard no peer-left for them.
          const present = new Set(msg.peers.map((p) => p.peer));
          for (const peer of [...links.keys()]) if (!present.has(peer)) closeLink(peer);
        } else {
          for (const peer of [...links.keys()]) closeLink(peer);
        }
        members.clear();
        fullSince = null;
        me = msg.peer;
        rtc = msg.rtc;
        retryDelay = 500;
        api.signalingUp = true;
        api.welcomes += 1;
        signalStatus.textContent = "Connected.";
        for (const p of msg.peers) members.set(p.peer, p);
        setState(msg.state);
        if (resumed) for (const peer of links.keys()) if (offerer(peer)) restartIce(peer);
        break;
      }
      case "peer-joined":
        members.set(msg.peer, msg);
        if (state === "in-call") ensureMedia().then(() => link(msg.peer));
        break;
      case "peer-left":
        members.delete(msg.peer);
        closeLink(msg.peer);
        break;
      case "signal":
        onSignal(msg.from, msg.data);
        break;
      case "chat":
        addChat(msg);
        break;
      case "state":
        setState(msg.state);
        break;
      case "error":
        signalStatus.textContent = msg.message;
        break;
      default:
        break;
    }
  }

  function setState(next) {
    state = next;
    root.dataset.state = next;
    if (next === "in-call") {
      statusLine.textContent = "The visit is in progress.";
      startCall();
    } else if (next === "finished") {
      hangUp("This visit has ended.");
    }
  }

  // -- the call ------------------------------------------------------------------------------------
  const offerer = (peer) => me !== null && me < peer;

  // Local media is asked for once; signals that arrive meanwhile wait for it, in order, so an
  // offer that comes while the camera is starting is answered, not lost.
  let mediaReady = null;
  function ensureMedia() {
    if (!mediaReady) {
      mediaReady = (async () => {
        try {
          localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
        } catch (e) {
          try {
            localStream = await navigator.mediaDevices.getUserMedia({ audio: true });
            statusLine.textContent = "Your camera is not available: the others hear you but cannot see you.";
          } catch (e2) {
            localStream = new MediaStream();
            statusLine.textContent = "Your camera and microphone are not available; you can still see and hear the others.";
          }
        }
        $("local-video").srcObject = localStream;
      })();
    }
    return mediaReady;
  }

  async function startCall() {
    $("call").hidden = false;
    await ensureMedia();
    for (const peer of members.keys()) link(peer);
  }

  function link(peer) {
    if (links.has(peer) || !localStream || peer === me) return links.get(peer);
    const pc = new RTCPeerConnection(rtc);
    const figure = document.createElement("figure");
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.dataset.peer = peer;
    const caption = document.createElement("figcaption");
    caption.textContent = (members.get(peer) || {}).name || "Participant";
    video.setAttribute("aria-label", caption.textContent);
    figure.append(video, caption);
    $("videos").appendChild(figure);
    const entry = { pc, figure, video, restartTimer: null };
    links.set(peer, entry);
    // Always one audio and one video line, sending and receiving, whether or not this browser
    // has a microphone or camera: a participant without a camera still gets the others' video,
    // and screen sharing later swaps a track in without renegotiating. The offerer adds them;
    // the other side answers on the lines the offer made (attachLocal).
    if (offerer(peer)) {
      for (const kind of ["audio", "video"]) {
        const transceiver = pc.addTransceiver(kind, { direction: "sendrecv" });
        const track = localTrack(kind);
        if (track) transceiver.sender.replaceTrack(track);
      }
    }
    const remote = new MediaStream();
    video.srcObject = remote;
    pc.ontrack = (e) => remote.addTrack(e.track);
    pc.onicecandidate = (e) => {
      if (e.candidate) send({ type: "signal", to: peer, data: { candidate: e.candidate.toJSON() } });
    };
    pc.onnegotiationneeded = async () => {
      if (!offerer(peer)) return;
      await offer(peer);
    };
    pc.oniceconnectionstatechange = () => {
      const s = pc.iceConnectionState;
      api.iceStates.push(s);
      clearTimeout(entry.restartTimer);
      if (s === "failed") recover(peer);
      else if (s === "disconnected") entry.restartTimer = setTimeout(() => recover(peer), 3000);
    };
    return entry;
  }

  async function offer(peer, options) {
    const entry = links.get(peer);
    if (!entry) return;
    const { pc } = entry;
    try {
      await pc.setLocalDescription(await pc.createOffer(options));
      send({ type: "signal", to: peer, data: { description: pc.localDescription.toJSON() } });
    } catch (e) {
      /* a newer negotiation took over */
    }
  }

  function recover(peer) {
    if (offerer(peer)) restartIce(peer);
    else send({ type: "signal", to: peer, data: { restart: true } });
  }

  function restartIce(peer) {
    const entry = links.get(peer);
    if (!entry) return;
    api.iceRestarts += 1;
    offer(peer, { iceRestart: true });
  }

  async function onSignal(peer, data) {
    if (state === "in-call") await ensureMedia();
    let entry = links.get(peer);
    if (!entry && state === "in-call") entry = link(peer);
    if (!entry) return;
    const { pc } = entry;
    try {
      if (data.description) {
        const description = data.description;
        if (description.type === "offer" && pc.signalingState !== "stable") {
          await pc.setLocalDescription({ type: "rollback" });
        }
        await pc.setRemoteDescription(description);
        if (description.type === "offer") {
          attachLocal(pc);
          await pc.setLocalDescription(await pc.createAnswer());
          send({ type: "signal", to: peer, data: { description: pc.localDescription.toJSON() } });
        }
      } else if (data.candidate) {
        await pc.addIceCandidate(data.candidate).catch(() => {});
      } else if (data.restart && offerer(peer)) {
        restartIce(peer);
      }
    } catch (e) {
      signalStatus.textContent = "A connection could not be set up; retrying.";
      if (offerer(peer)) restartIce(peer);
    }
  }

  function closeLink(peer) {
    const entry = links.get(peer);
    if (!entry) return;
    clearTimeout(entry.restartTimer);
    entry.pc.close();
    entry.figure.remove();
    links.delete(peer);
  }

  function hangUp(message) {
    ended = true;
    for (const peer of [...links.keys()]) closeLink(peer);
    if (localStream) for (const t of localStream.getTracks()) t.stop();
    if (ws) ws.close(1000, "bye");
    $("call").hidden = true;
    statusLine.textContent = message;
  }

  // -- controls ------------------------------------------------------------------------------------
  const toggle = (button, on, labels) => {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? labels[1] : labels[0];
  };
  if ($("mute")) {
    $("mute").addEventListener("click", () => {
      const tracks = localStream ? localStream.getAudioTracks() : [];
      const muted = tracks.length > 0 && tracks[0].enabled;
      for (const t of tracks) t.enabled = !muted;
      toggle($("mute"), muted, ["Mute", "Unmute"]);
    });
    $("camera").addEventListener("click", () => {
      const tracks = localStream ? localStream.getVideoTracks() : [];
      const off = tracks.length > 0 && tracks[0].enabled;
      for (const t of tracks) t.enabled = !off;
      toggle($("camera"), off, ["Camera off", "Camera on"]);
    });
    $("share").addEventListener("click", async () => {
      if (screenTrack) {
        stopSharing();
        return;
      }
      try {
        const display = await navigator.mediaDevices.getDisplayMedia({ video: true });
        screenTrack = display.getVideoTracks()[0];
        screenTrack.onended = stopSharing;
        await replaceVideo(screenTrack);
        toggle($("share"), true, ["Share screen", "Stop sharing"]);
      } catch (e) {
        signalStatus.textContent = "Screen sharing was not started.";
      }
    });
  }
  function localTrack(kind) {
    if (!localStream) return null;
    if (kind === "video") return screenTrack || localStream.getVideoTracks()[0] || null;
    return localStream.getAudioTracks()[0] || null;
  }

  function attachLocal(pc) {
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.stopped || transceiver.sender.track) continue;
      const track = localTrack(transceiver.receiver.track.kind);
      if (track) transceiver.sender.replaceTrack(track);
      transceiver.direction = "sendrecv";
    }
  }

  const videoLine = (pc) => pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === "video");

  // replaceTrack settles asynchronously; the button changes only once every call sends the new track.
  function replaceVideo(track) {
    const pending = [];
    for (const { pc } of links.values()) {
      const line = videoLine(pc);
      if (line) pending.push(line.sender.replaceTrack(track));
    }
    return Promise.all(pending);
  }
  async function stopSharing() {
    if (!screenTrack) return;
    screenTrack.stop();
    screenTrack = null;
    const camera = localStream && localStream.getVideoTracks()[0];
    if (camera) await replaceVideo(camera);
    toggle($("share"), false, ["Share screen", "Stop sharing"]);
  }
  if ($("leave")) $("leave").addEventListener("click", () => hangUp("You left the call. You can rejoin from My visits."));

  // -- chat ----------------------------------------------------------------------------------------
  function addChat(msg) {
    const log = $("chat-log");
    if (!log) return;
    const li = document.createElement("li");
    const who = document.createElement("strong");
    who.textContent = msg.from === me ? "You" : msg.name;
    li.append(who, `: ${msg.text}`);
    log.appendChild(li);
    api.chats.push({ from: msg.from === me ? "me" : msg.role, text: msg.text });
  }
  if ($("chat-form")) {
    $("chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("chat-text");
      const text = input.value.trim();
      if (text) send({ type: "chat", text });
      input.value = "";
    });
  }

  // -- connection quality from getStats ----------------------------------------------------------------
  // Round-trip time bands follow ITU-T G.114 (one-way delay under 150 ms is transparent to most
  // users, over 400 ms unacceptable), doubled for a round trip; loss bands are ours, judged with
  // Opus and VP8 at their defaults, which hide a few percent of loss.
  const previous = new Map();
  async function measure() {
    let worst = null;
    for (const [peer, { pc }] of links) {
      const stats = await pc.getStats();
      let rtt = null;
      let received = 0;
      let lost = 0;
      stats.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime;
        if (s.type === "inbound-rtp") {
          received += s.packetsReceived || 0;
          lost += s.packetsLost || 0;
        }
      });
      const before = previous.get(peer) || { received: 0, lost: 0 };
      previous.set(peer, { received, lost });
      const dr = received - before.received;
      const dl = Math.max(0, lost - before.lost);
      const loss = dr + dl > 0 ? dl / (dr + dl) : 0;
      // Judged on every packet received (audio too): someone without a camera is still connected.
      let level = "good";
      if (received === 0) level = "connecting";
      else if ((rtt !== null && rtt > 0.8) || loss > 0.08) level = "poor";
      else if ((rtt !== null && rtt > 0.3) || loss > 0.02) level = "fair";
      const rank = { good: 0, connecting: 1, fair: 2, poor: 3 };
      if (!worst || rank[level] > rank[worst.level]) worst = { level, rtt, loss };
    }
    const el = $("quality");
    if (!el) return;
    if (!worst) {
      el.dataset.quality = "unknown";
      el.textContent = state === "in-call" ? "waiting for the others" : "not in a call";
      return;
    }
    el.dataset.quality = worst.level;
    const rttText = worst.rtt === null ? "" : `, round trip ${Math.round(worst.rtt * 1000)} ms`;
    el.textContent = `${worst.level}${rttText}, loss ${(worst.loss * 100).toFixed(1)}%`;
  }
  setInterval(() => measure().catch(() => {}), 2000);

  // What the browser tests and a support person read: no secrets, only the call's health.
  const api = {
    signalingUp: false,
    welcomes: 0,
    iceRestarts: 0,
    iceStates: [],
    chats: [],
    socket: () => ws,
    peer: () => me,
    links: () =>
      [...links].map(([peer, { pc }]) => ({
        peer,
        offerer: offerer(peer),
        signaling: pc.signalingState,
        ice: pc.iceConnectionState,
        connection: pc.connectionState,
      })),
    members: () => [...members.keys()],
    // What each call sends as video: the camera's track, or the shared screen's.
    sentVideo: () =>
      [...links.values()].map(({ pc }) => {
        const line = videoLine(pc);
        const track = line && line.sender.track;
        if (!track) return "none";
        return track === screenTrack ? "screen" : "camera";
      }),
    state: () => state,
    async inboundVideo() {
      const out = [];
      for (const { pc } of links.values()) {
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") out.push({ framesDecoded: s.framesDecoded || 0 });
        });
      }
      return out;
    },
    async inboundAudio() {
      const out = [];
      for (const { pc } of links.values()) {
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "audio") out.push({ packetsReceived: s.packetsReceived || 0 });
        });
      }
      return out;
    },
    async selectedCandidates() {
      const out = [];
      for (const { pc } of links.values()) {
        const stats = await pc.getStats();
        const byId = new Map();
        stats.forEach((s) => byId.set(s.id, s));
        stats.forEach((s) => {
          if (s.type === "transport" && s.selectedCandidatePairId) {
            const pair = byId.get(s.selectedCandidatePairId);
            if (pair) out.push({ local: (byId.get(pair.localCandidateId) || {}).candidateType, remote: (byId.get(pair.remoteCandidateId) || {}).candidateType });
          }
        });
      }
      return out;
    },
  };
  window.medweaveVisit = api;

  if (root.dataset.state && ["scheduled", "waiting", "in-call"].includes(state)) {
    if (!(role === "patient" && state === "scheduled")) connect();
  }
})();
