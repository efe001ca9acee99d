// Forms with data-confirm="question" ask before they submit (instead of an inline onsubmit, which the
// Content-Security-Policy blocks).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
