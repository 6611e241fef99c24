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
