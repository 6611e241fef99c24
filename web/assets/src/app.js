// The pages work without script; this adds htmx (autocomplete, live queues) and small
// touches: one submit per checkout form, gallery switching, the CSRF header for htmx.
import htmx from "htmx.org";

window.htmx = htmx;

document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once")) return;
  // the Idempotency-Key makes a second submit harmless; this only spares the request
  if (form.dataset.sent) event.preventDefault();
  form.dataset.sent = "1";
});

document.addEventListener("click", (event) => {
  const link = event.target.closest("[data-gallery]");
  if (!link) return;
  const main = document.getElementById("main-picture");
  if (!main) return;
  event.preventDefault();
  main.src = link.dataset.gallery;
  main.removeAttribute("srcset");
});

// Image upload with a preview and a progress bar; field errors next to the field.
document.addEventListener("change", (event) => {
  const input = event.target;
  const form = input.closest && input.closest("form[data-upload]");
  if (!form || input.type !== "file") return;
  const preview = form.querySelector("[data-preview]");
  if (preview && input.files[0]) {
    preview.src = URL.createObjectURL(input.files[0]);
    preview.hidden = false;
  }
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-upload")) return;
  event.preventDefault();
  const bar = form.querySelector("[data-progress]");
  form.querySelectorAll("[data-error-for]").forEach((el) => (el.textContent = ""));
  const xhr = new XMLHttpRequest();
  xhr.open("POST", form.action);
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    bar.hidden = false;
    bar.value = Math.round((100 * e.loaded) / e.total);
  });
  xhr.addEventListener("load", () => {
    if (xhr.status < 300) {
      window.location.reload();
      return;
    }
    let errors = [{ field: "file", message: "the upload failed (" + xhr.status + ")" }];
    try {
      errors = JSON.parse(xhr.responseText).errors || errors;
    } catch (_) {}
    for (const err of errors) {
      const slot = form.querySelector(`[data-error-for="${err.field}"]`);
      if (slot) slot.textContent = err.message; // textContent: never markup
    }
  });
  xhr.send(new FormData(form));
});
