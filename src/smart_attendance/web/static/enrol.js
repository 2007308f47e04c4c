/* The Enrol page of one student: photos from the browser's camera (getUserMedia, a frame drawn
 * on a canvas and sent as JPEG) or uploaded, each answered with its checks (one face found, big
 * enough, sharp, facing the camera) in a live region; a kept photo joins the list at once.
 * Without this file the upload form and the Remove buttons still work (the page comes back
 * with a message per photo). Uses window.attendance.post (app.js) for the CSRF token.
 */
(function () {
  "use strict";

  var VERDICT = { "true": ["pass", "pass"], "false": ["fail", "fail"], "null": ["unchecked", "not checked"] };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  /* A button kept focusable while its work runs (a disabled button would lose the keyboard
   * focus): clicks are ignored until done. */
  function busy(button, on) {
    if (on) { button.setAttribute("aria-disabled", "true"); } else { button.removeAttribute("aria-disabled"); }
  }
  function isBusy(button) { return button.getAttribute("aria-disabled") === "true"; }

  function say(feedback, nodes) {
    feedback.replaceChildren.apply(feedback, nodes);
  }

  function checkItem(check) {
    var item = el("li");
    var verdict = VERDICT[String(check.passed)] || VERDICT["null"];
    item.appendChild(el("span", "verdict " + verdict[0], verdict[1]));
    item.appendChild(el("span", "what", check.label));
    if (check.detail) { item.appendChild(el("span", "detail", check.detail)); }
    return item;
  }

  function resultBlock(photo) {
    var block = el("div", "result");
    var head = photo.status === "enrolled"
      ? photo.file + ": enrolled."
      : photo.file + ": not enrolled, " + (photo.detail || photo.reason || "refused") + ".";
    block.appendChild(el("p", null, head));
    if (photo.checks && photo.checks.length) {
      var list = el("ul", "checks");
      photo.checks.forEach(function (check) { list.appendChild(checkItem(check)); });
      block.appendChild(list);
    }
    return block;
  }

  function addToList(photo) {
    var list = document.querySelector("[data-photos]");
    if (!list || !photo.filename) { return; }
    var existing = Array.prototype.find.call(list.children, function (li) {
      return li.getAttribute("data-filename") === photo.filename;
    });
    if (existing) { existing.classList.add("fresh"); return; }
    var item = el("li", "fresh");
    item.setAttribute("data-filename", photo.filename);
    var img = el("img");
    img.src = photo.thumbnail;
    img.alt = "Photo " + photo.filename;
    img.width = 160;
    img.height = 160;
    item.appendChild(img);
    item.appendChild(el("span", "file", photo.filename));
    item.appendChild(el("span", "chip present", "Enrolled"));
    var form = el("form");
    form.method = "post";
    form.action = photo.remove;
    form.setAttribute("data-confirm", "Remove photo " + photo.filename +
      "? It is deleted from the dataset and no longer used to recognise this student.");
    var token = el("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = window.attendance.csrfToken();
    form.appendChild(token);
    var button = el("button", "small danger", "Remove");
    button.type = "submit";
    button.setAttribute("aria-label", "Remove photo " + photo.filename);
    form.appendChild(button);
    item.appendChild(form);
    list.insertBefore(item, list.firstChild);
    var empty = document.querySelector("[data-no-photos]");
    if (empty) { empty.hidden = true; }
  }

  function showAnswer(feedback, response) {
    if (response.status === 401) {
      say(feedback, [el("p", null, "Signed out: reload the page to sign in again.")]);
      return null;
    }
    return response.json().then(function (body) {
      if (!response.ok || body.status !== "success") {
        say(feedback, [el("p", null, "Not sent: " + (body.error || ("error " + response.status)) + ".")]);
        return;
      }
      say(feedback, body.photos.map(resultBlock));
      body.photos.forEach(function (photo) { if (photo.status === "enrolled") { addToList(photo); } });
      var count = document.querySelector("[data-enrolled-count]");
      if (count && typeof body.total === "number") {
        count.textContent = body.total + (body.total === 1 ? " photo" : " photos") + " enrolled";
      }
    });
  }

  function send(url, form, feedback) {
    say(feedback, [el("p", null, "Checking…")]);
    return window.attendance.post(url, form)
      .then(function (response) { return showAnswer(feedback, response); })
      .catch(function () { say(feedback, [el("p", null, "Server unreachable: the photo was not sent.")]); });
  }

  function cameraError(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Camera permission was refused. Allow the camera for this site in the browser's settings, or upload photos instead.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      return "No camera was found. Connect one, or upload photos instead.";
    }
    if (name === "NotReadableError" || name === "AbortError") {
      return "The camera cannot start: another program may be using it. Close it and try again, or upload photos instead.";
    }
    return "The camera could not start" + (name ? " (" + name + ")" : "") + ". Upload photos instead.";
  }

  function camera(panel, feedback) {
    var url = panel.getAttribute("data-upload");
    var video = panel.querySelector("[data-camera-video]");
    var view = panel.querySelector("[data-camera-view]");
    var start = panel.querySelector("[data-camera-start]");
    var take = panel.querySelector("[data-camera-take]");
    var canvas = panel.querySelector("[data-camera-canvas]");
    var message = panel.querySelector("[data-camera-message]");
    var stream = null;

    panel.querySelector("[data-camera-nojs]").hidden = true;
    function tell(text) { message.textContent = text; message.hidden = !text; }

    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      tell("This browser cannot use a camera on this page (a camera needs the dashboard opened over HTTPS, or on localhost). Upload photos instead.");
      return;
    }
    panel.querySelector("[data-camera-buttons]").hidden = false;

    function stop() {
      if (stream) { stream.getTracks().forEach(function (track) { track.stop(); }); }
      stream = null;
      video.srcObject = null;
      view.hidden = true;
      take.disabled = true;
      start.textContent = "Start camera";
    }

    start.addEventListener("click", function () {
      if (stream) { stop(); return; }
      tell("");
      start.disabled = true;
      navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false
      }).then(function (media) {
        stream = media;
        video.srcObject = media;
        view.hidden = false;
        return video.play();
      }).then(function () {
        take.disabled = false;
        start.textContent = "Stop camera";
        take.focus();
      }).catch(function (error) {
        stop();
        tell(cameraError(error));
      }).then(function () { start.disabled = false; });
    });

    take.addEventListener("click", function () {
      if (isBusy(take)) { return; }
      if (!stream || !video.videoWidth) { tell("The camera has no picture yet: wait a moment and try again."); return; }
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      busy(take, true);
      canvas.toBlob(function (blob) {
        if (!blob) { busy(take, false); tell("The photo could not be taken; try again."); return; }
        var form = new FormData();
        var now = new Date();
        var stamp = two(now.getHours()) + two(now.getMinutes()) + two(now.getSeconds());
        form.append("photo", blob, "camera-" + stamp + ".jpg");
        send(url, form, feedback).then(function () { busy(take, false); });
      }, "image/jpeg", 0.92);
    });

    window.addEventListener("pagehide", stop);
  }

  function upload(form, feedback) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      if (isBusy(button)) { return; }
      busy(button, true);
      send(form.action, new FormData(form), feedback).then(function () {
        busy(button, false);
        form.reset();
      });
    });
  }

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var feedback = document.querySelector("[data-feedback]");
    var panel = document.querySelector("[data-camera]");
    var form = document.querySelector("[data-upload-form]");
    if (panel && feedback) { camera(panel, feedback); }
    if (form && feedback) { upload(form, feedback); }
  });
})();
