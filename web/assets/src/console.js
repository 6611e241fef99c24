// The SQL editor island: CodeMirror 6 over the form's textarea, with completion of the
// analytical store's tables and columns. Without script the textarea still works.
import { EditorView, basicSetup } from "codemirror";
import { sql, StandardSQL } from "@codemirror/lang-sql";

for (const host of document.querySelectorAll("[data-sql-editor]")) {
  const textarea = host.querySelector("textarea");
  const schema = JSON.parse(host.dataset.schema || "{}");
  const view = new EditorView({
    doc: textarea.value,
    extensions: [
      basicSetup,
      sql({ dialect: StandardSQL, schema, upperCaseKeywords: true }),
      EditorView.contentAttributes.of({ "aria-label": "SQL", "aria-describedby": textarea.getAttribute("aria-describedby") || "" }),
    ],
  });
  // axe: a scrolling region must be reachable by keyboard (long queries scroll sideways)
  view.scrollDOM.tabIndex = 0;
  view.scrollDOM.setAttribute("aria-label", "SQL editor");
  textarea.hidden = true;
  host.appendChild(view.dom);
  textarea.form.addEventListener("submit", () => {
    textarea.value = view.state.doc.toString();
  });
  host.editor = view;
}
