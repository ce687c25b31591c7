// Lariba Cloud console, bucket page: uploads straight to presigned URLs (large files in
// parts), "Copy link" buttons, and the object list refreshed in place after uploads.
// Everything but uploading also works without this script.
"use strict";

(() => {
  const upload = document.querySelector("[data-upload]");
  const objects = document.getElementById("objects");

  function formatBytes(value) {
    let size = value;
    for (const unit of ["B", "KiB", "MiB", "GiB"]) {
      if (Math.abs(size) < 1024) return unit === "B" ? `${size} B` : `${size.toFixed(1)} ${unit}`;
      size /= 1024;
    }
    return `${size.toFixed(1)} TiB`;
  }

  // The console's problem answers carry the API's detail and, for bad input, field messages.
  function problemMessage(data, status) {
    if (!data || !data.detail) return `The server answered ${status}.`;
    const fields = (data.errors || []).map((e) => `${e.field}: ${e.message}`);
    return fields.length ? `${data.detail} (${fields.join("; ")})` : data.detail;
  }

  async function consoleJson(url, { method = "POST", body } = {}) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRF-Token": window.lariba.csrfToken(),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new Error(problemMessage(data, response.status));
    return data;
  }

  // One PUT of a blob to a presigned URL, reporting the bytes sent so far.
  function put(signed, blob, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("PUT", signed.url);
      for (const [name, value] of Object.entries(signed.headers || {})) {
        // The browser sets the length itself and refuses to be told it.
        if (name.toLowerCase() !== "content-length") request.setRequestHeader(name, value);
      }
      request.upload.onprogress = (event) => onProgress(event.loaded);
      request.onload = () => {
        if (request.status >= 200 && request.status < 300) return resolve(request);
        let data = null;
        try { data = JSON.parse(request.responseText); } catch (error) { data = null; }
        reject(new Error(problemMessage(data, request.status)));
      };
      request.onerror = () => reject(new Error("The connection to the storage failed."));
      request.send(blob);
    });
  }

  async function uploadWhole(file, key, report) {
    const signed = await consoleJson(upload.dataset.presignUrl, {
      body: { key, method: "PUT", content_length: file.size, content_type: file.type || null },
    });
    await put(signed, file, report);
  }

  async function uploadInParts(file, key, partSize, report) {
    const begun = await consoleJson(upload.dataset.uploadsUrl, {
      body: { key, content_type: file.type || null },
    });
    const base = `${upload.dataset.uploadsUrl}/${begun.upload_id}`;
    try {
      const parts = [];
      let sent = 0;
      for (let number = 1, offset = 0; offset < file.size; number += 1, offset += partSize) {
        const blob = file.slice(offset, Math.min(offset + partSize, file.size));
        const signed = await consoleJson(`${base}/parts`, {
          body: { part_number: number, content_length: blob.size },
        });
        const response = await put(signed, blob, (loaded) => report(sent + loaded));
        const etag = response.getResponseHeader("ETag");
        if (!etag) throw new Error("The storage did not return the part's ETag.");
        sent += blob.size;
        parts.push({ part_number: number, etag });
      }
      await consoleJson(`${base}/complete`, { body: { parts } });
    } catch (error) {
      // Nothing half-uploaded is left to count against the quota.
      await consoleJson(base, { method: "DELETE" }).catch(() => null);
      throw error;
    }
  }

  function progressRow(file) {
    const row = document.createElement("li");
    const name = document.createElement("span");
    const bar = document.createElement("progress");
    const text = document.createElement("span");
    const id = `upload-${Math.random().toString(36).slice(2)}`;
    name.id = id;
    name.textContent = file.name;
    bar.max = Math.max(file.size, 1);
    bar.value = 0;
    bar.setAttribute("aria-labelledby", id);
    text.setAttribute("aria-live", "polite");
    text.textContent = `0 B of ${formatBytes(file.size)}`;
    row.append(name, bar, text);
    let spoken = 0;
    return {
      row,
      report(loaded) {
        bar.value = loaded;
        // Screen readers hear the count at most once a second.
        const now = Date.now();
        if (now - spoken < 1000) return;
        spoken = now;
        text.textContent = `${formatBytes(loaded)} of ${formatBytes(file.size)}`;
      },
      done(message) {
        bar.value = bar.max;
        text.textContent = message;
      },
      failed(message) {
        text.textContent = `Failed: ${message}`;
      },
    };
  }

  // Fetches this page again and swaps in the fresh object list and bucket facts.
  async function refreshObjects() {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ["objects", "bucket-live"]) {
      const here = document.getElementById(id);
      const there = fresh.getElementById(id);
      if (here && there) here.innerHTML = there.innerHTML;
    }
  }

  async function uploadFiles(files) {
    const list = document.getElementById("upload-list");
    const status = document.getElementById("upload-status");
    const partSize = Number(upload.dataset.partSize);
    list.hidden = false;
    status.textContent = `Uploading ${files.length} file${files.length === 1 ? "" : "s"}…`;
    let uploaded = 0;
    for (const file of files) {
      const progress = progressRow(file);
      list.append(progress.row);
      const key = `${upload.dataset.prefix}${file.name}`;
      try {
        if (file.size > partSize) await uploadInParts(file, key, partSize, progress.report);
        else await uploadWhole(file, key, progress.report);
        progress.done(`Uploaded, ${formatBytes(file.size)}`);
        uploaded += 1;
      } catch (error) {
        progress.failed(error.message);
      }
    }
    const failed = files.length - uploaded;
    status.textContent = `${uploaded} uploaded${failed ? `, ${failed} failed` : ""}.`;
    if (uploaded) await refreshObjects();
  }

  if (upload) {
    const zone = upload.querySelector("[data-dropzone]");
    const input = zone.querySelector("input[type=file]");
    zone.hidden = false;
    upload.querySelector("[data-without-script]").hidden = true;
    input.addEventListener("change", async () => {
      const files = [...input.files];
      input.value = "";
      if (files.length) await uploadFiles(files);
    });
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    }));
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", async (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const files = [...event.dataTransfer.files];
      if (files.length) await uploadFiles(files);
    });
  }

  async function shareLink(form) {
    const status = document.getElementById("link-status");
    const key = form.elements.key.value;
    status.textContent = "";
    const response = await fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": window.lariba.csrfToken() },
      body: new URLSearchParams(new FormData(form)),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      status.textContent = `No link for ${key}: ${problemMessage(data, response.status)}`;
      return;
    }
    const until = new Date(data.expires_at).toLocaleString();
    const message = document.createElement("p");
    const label = document.createElement("label");
    const field = document.createElement("input");
    field.id = "share-url";
    field.type = "url";
    field.readOnly = true;
    field.value = data.url;
    label.htmlFor = field.id;
    try {
      await navigator.clipboard.writeText(data.url);
      message.textContent = `Link to ${key} copied. It works until ${until}.`;
    } catch (error) {
      message.textContent = `Copy this link to ${key} by hand. It works until ${until}.`;
    }
    label.textContent = "Link";
    status.append(message, label, field);
    field.select();
  }

  // The object list is replaced after uploads, so its forms are handled from here.
  objects?.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.confirmObject !== undefined) {
      if (!window.confirm(form.dataset.confirmObject)) event.preventDefault();
    } else if (form.dataset.share !== undefined) {
      event.preventDefault();
      shareLink(form).catch((error) => {
        document.getElementById("link-status").textContent = `No link: ${error.message}`;
      });
    }
  });

  // A bucket just created: once it is available, load the page again to show its objects.
  document.addEventListener("lariba:refreshed", () => {
    const status = document.querySelector("#bucket-live [data-bucket-status]");
    const usable = ["available", "modifying"].includes(status?.dataset.bucketStatus);
    if (usable && !document.getElementById("objects-section")) window.location.reload();
  });
})();
