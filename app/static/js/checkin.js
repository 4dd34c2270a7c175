/* Door check-in: decode QR codes from the phone's camera and check members in.
 *
 * Decoding uses the browser's BarcodeDetector when it supports QR codes and
 * the vendored jsQR otherwise. Each scan is posted to the console's check-in
 * route (session + CSRF header) with a fresh nonce; a retry after a network
 * failure reuses the nonce, so the server answers the same and records once.
 * The gate name is chosen once per device and kept in localStorage.
 * The screen shows only what the person at the door needs; technical details
 * (which decoder, camera errors, HTTP statuses) go to the console log.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("checkin-config").textContent);
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var GATE_KEY = "muster.checkin.gate";
  var SAME_CODE_MS = 4000;     // the same card held in front of the camera counts once
  var SCAN_EVERY_MS = 120;
  var MAX_SIDE = 720;          // frames are scaled down to this for jsQR

  var video = document.getElementById("video");
  var canvas = document.getElementById("frame");
  var ctx = canvas.getContext("2d", { willReadFrequently: true });
  var hint = document.getElementById("camera-hint");
  var resultBox = document.getElementById("result");
  var verdictEl = document.getElementById("verdict");
  var whoEl = document.getElementById("who");
  var detailEl = document.getElementById("detail");
  var photoEl = document.getElementById("result-photo");
  var gateName = document.getElementById("gate-name");
  var gateDialog = document.getElementById("gate-dialog");
  var gateInput = document.getElementById("gate-input");

  var detector = null;
  var lastCode = null;
  var lastCodeAt = 0;
  var busy = false;

  // --- gate --------------------------------------------------------------------------

  function gate() {
    try { return localStorage.getItem(GATE_KEY) || ""; } catch (e) { return ""; }
  }
  function showGate() {
    gateName.textContent = gate() || "—";
  }
  function askGate() {
    gateInput.value = gate();
    gateDialog.classList.add("show");
    setTimeout(function () { gateInput.focus(); }, 50);
  }
  document.getElementById("gate-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var value = gateInput.value.trim().slice(0, 60);
    if (!value) return;
    try { localStorage.setItem(GATE_KEY, value); } catch (e) { /* private mode: keep it for this page */ }
    gateName.textContent = value;
    gateDialog.classList.remove("show");
  });
  document.getElementById("gate-button").addEventListener("click", askGate);

  // --- feedback ----------------------------------------------------------------------

  var audio = null;
  function beep(ok) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.frequency.value = ok ? 880 : 220;
      osc.type = ok ? "sine" : "square";
      gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + (ok ? 0.15 : 0.4));
    } catch (e) { /* no audio: the colour says it all */ }
    if (navigator.vibrate) navigator.vibrate(ok ? 80 : [120, 60, 120]);
  }

  var VERDICTS = { admitted: "Admitted", already_checked_in: "Already in", rejected: "Not admitted" };

  function time(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function initials(member) {
    return ((member.first_name || "?")[0] + (member.last_name || "")[0]).toUpperCase();
  }

  function show(answer) {
    var result = answer.result || "rejected";
    resultBox.className = result + " p-3 d-flex align-items-center";
    resultBox.dataset.result = result;
    resultBox.dataset.reason = answer.reason || "";
    verdictEl.textContent = VERDICTS[result] || result;
    var member = answer.member;
    whoEl.textContent = member ? member.full_name + " · " + member.membership_number : "";
    var detail = answer.message || "";
    if (result === "already_checked_in" && answer.first_checked_in_at) {
      detail = "First in at " + time(answer.first_checked_in_at) + (answer.first_gate ? " (" + answer.first_gate + ")" : "") + ".";
    }
    detailEl.textContent = detail;
    photoEl.innerHTML = "";
    if (member) {
      if (member.photo_url) {
        var img = document.createElement("img");
        img.src = member.photo_url;
        img.alt = "Photo of " + member.full_name;
        photoEl.appendChild(img);
      } else {
        var box = document.createElement("div");
        box.className = "nophoto";
        box.textContent = initials(member);
        photoEl.appendChild(box);
      }
      photoEl.hidden = false;
    } else {
      photoEl.hidden = true;
    }
    beep(result === "admitted");
    if (result === "admitted" && window.htmx) window.htmx.trigger(document.body, "refresh-counts");
  }

  function pending(text) {
    resultBox.className = "pending p-3 d-flex align-items-center";
    resultBox.dataset.result = "pending";
    verdictEl.textContent = "Checking…";
    whoEl.textContent = "";
    detailEl.textContent = text || "";
    photoEl.hidden = true;
  }

  // --- talking to the server ---------------------------------------------------------

  function nonce() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function post(body, attempt) {
    return fetch(config.checkinUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json" },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () {
        console.log("check-in: answer " + response.status + " was not JSON");
        return { error: response.status === 400 ? "The page has expired: reload it." : "Something went wrong. Try again." };
      }).then(function (data) {
        if (!response.ok) {
          console.log("check-in: refused with " + response.status, data);
          return { result: "rejected", reason: "error", message: data.error || "The check-in was refused." };
        }
        return data;
      });
    }).catch(function (err) {
      console.log("check-in: network error", err);
      // Network trouble: retry with the same nonce, so a request that did arrive counts once.
      if (attempt < 3) {
        return new Promise(function (resolve) { setTimeout(resolve, 400 * (attempt + 1)); })
          .then(function () { return post(body, attempt + 1); });
      }
      return { result: "rejected", reason: "offline", message: "No connection to the server. Try again." };
    });
  }

  function checkIn(payload) {
    if (busy) return Promise.resolve();
    busy = true;
    var body = Object.assign({ gate: gate() || null, nonce: nonce() }, payload);
    pending(payload.member_id ? "Looking up the member…" : "Verifying the card…");
    return post(body, 0).then(show).finally(function () { busy = false; });
  }

  // --- decoding ----------------------------------------------------------------------

  function decodeFrame() {
    if (detector) {
      return detector.detect(video).then(function (codes) {
        return codes.length ? codes[0].rawValue : null;
      }).catch(function () { return null; });
    }
    var w = video.videoWidth, h = video.videoHeight;
    if (!w || !h || typeof jsQR !== "function") return Promise.resolve(null);
    var scale = Math.min(1, MAX_SIDE / Math.max(w, h));
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    var image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    var code = jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" });
    return Promise.resolve(code ? code.data : null);
  }

  function loop() {
    if (video.readyState < 2 || busy || gateDialog.classList.contains("show")) {
      setTimeout(loop, SCAN_EVERY_MS);
      return;
    }
    decodeFrame().then(function (text) {
      var now = Date.now();
      if (text && !(text === lastCode && now - lastCodeAt < SAME_CODE_MS)) {
        lastCode = text;
        lastCodeAt = now;
        return checkIn({ token: text });
      }
      if (text) lastCodeAt = now;
    }).finally(function () { setTimeout(loop, SCAN_EVERY_MS); });
  }

  function startDecoder() {
    if ("BarcodeDetector" in window && window.BarcodeDetector.getSupportedFormats) {
      return window.BarcodeDetector.getSupportedFormats().then(function (formats) {
        if (formats.indexOf("qr_code") >= 0) {
          detector = new window.BarcodeDetector({ formats: ["qr_code"] });
        }
      }).catch(function () { /* fall back to jsQR */ });
    }
    return Promise.resolve();
  }

  function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      console.log("camera: no getUserMedia (it needs a secure context: HTTPS or localhost)");
      hint.textContent = "The camera cannot be used here. Find members by name below.";
      return;
    }
    navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: false,
    }).then(function (stream) {
      video.srcObject = stream;
      return video.play().catch(function () { /* autoplay is muted; ignore */ });
    }).then(function () {
      hint.textContent = "Point the camera at the QR code on the card";
      loop();
    }).catch(function (err) {
      console.log("camera unavailable", err);
      var refused = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
      hint.textContent = refused
        ? "The camera is not allowed. Allow it in the browser, or find members by name below."
        : "The camera could not start. Find members by name below.";
    });
  }

  // --- manual look-up ----------------------------------------------------------------

  var lookupResults = document.getElementById("lookup-results");
  document.getElementById("lookup-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = document.getElementById("lookup-q").value.trim();
    if (q.length < 2) return;
    lookupResults.innerHTML = '<div class="list-group-item">Searching…</div>';
    fetch(config.lookupUrl + "?q=" + encodeURIComponent(q), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        lookupResults.innerHTML = "";
        if (!data.items || !data.items.length) {
          lookupResults.innerHTML = '<div class="list-group-item">No member of this event\'s area matches.</div>';
          return;
        }
        data.items.forEach(function (m) {
          var item = document.createElement("button");
          item.type = "button";
          item.className = "list-group-item list-group-item-action d-flex justify-content-between align-items-center";
          var label = document.createElement("span");
          label.textContent = m.full_name + " · " + m.membership_number + (m.unit ? " · " + m.unit : "");
          var badge = document.createElement("span");
          badge.className = "badge bg-secondary";
          badge.textContent = m.registration_status ? m.registration_status.replace("_", " ") : "not registered";
          item.appendChild(label); item.appendChild(badge);
          item.addEventListener("click", function () {
            checkIn({ member_id: m.id }).then(function () { lookupResults.innerHTML = ""; });
          });
          lookupResults.appendChild(item);
        });
      })
      .catch(function () { lookupResults.innerHTML = '<div class="list-group-item">The search failed.</div>'; });
  });

  // --- start -------------------------------------------------------------------------

  showGate();
  if (!gate()) askGate();
  startDecoder().then(function () {
    console.log(detector ? "check-in: decoding with the browser's barcode detector" : "check-in: decoding with jsQR");
    startCamera();
  });
  window.musterCheckin = { checkIn: checkIn, show: show };
})();
