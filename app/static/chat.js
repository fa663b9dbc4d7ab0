// The chat page: a client of the server's public OpenAI API, nothing private.
// The conversation lives in this page only (the server is stateless), so a reload
// starts an empty chat. Settings and the API key are kept in localStorage.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "llm-service-api-key";
const SETTINGS_STORE = "llm-service-settings";

const chat = {
  messages: [], // {role, content} turns sent back as history with each request
  controller: null, // AbortController of the reply being generated, if any
  model: "default",
};

function apiKey() {
  return localStorage.getItem(KEY_STORE) || "";
}

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = apiKey();
  if (key) result.Authorization = "Bearer " + key;
  return result;
}

// Ask for a key (the server answered 401); resolves once one is entered.
function askForKey(rejected) {
  const dialog = $("key-dialog");
  $("key-error").hidden = !rejected;
  $("key-input").value = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        localStorage.setItem(KEY_STORE, $("key-input").value.trim());
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
  });
}

// fetch() that asks for an API key and retries while the server answers 401.
async function call(path, options = {}) {
  for (let rejected = false; ; rejected = true) {
    const response = await fetch(path, { ...options, headers: headers() });
    if (response.status !== 401) return response;
    await askForKey(rejected || apiKey() !== "");
  }
}

async function loadModel() {
  try {
    const response = await call("/v1/models");
    const body = await response.json();
    chat.model = body.data[0].id;
    $("model").textContent = chat.model;
  } catch (err) {
    $("model").textContent = "server not reachable";
  }
}

function addBubble(role, text) {
  const bubble = document.createElement("div");
  bubble.className = "message " + role;
  const content = document.createElement("div");
  content.className = "content";
  content.textContent = text;
  bubble.append(content);
  $("messages").append(bubble);
  bubble.scrollIntoView({ block: "end" });
  return bubble;
}

function note(bubble, className, text) {
  const line = document.createElement("div");
  line.className = className;
  line.textContent = text;
  bubble.append(line);
  return line;
}

// An OpenAI error body (HTTP or in-band in the stream), shown under the reply.
function showError(bubble, error) {
  bubble.classList.add("error");
  note(bubble, "error-text", error.message || "The server answered with an error.");
  const trimmable = error.code === "context_length_exceeded" && chat.messages.length > 2;
  if (!trimmable) {
    // Take the unanswered message back into the input box, so it can be edited or resent.
    const last = chat.messages[chat.messages.length - 1];
    if (last && last.role === "user") {
      chat.messages.pop();
      if (!$("input").value) $("input").value = last.content;
    }
    return;
  }
  const trim = document.createElement("button");
  trim.id = "trim";
  trim.type = "button";
  trim.textContent = "Trim oldest turns and retry";
  trim.addEventListener("click", () => {
    bubble.remove();
    chat.messages.splice(0, 2); // the oldest user message and its reply
    generate();
  });
  bubble.append(trim);
}

function settings() {
  return {
    system: $("system").value.trim(),
    temperature: Number($("temperature").value),
    max_tokens: Number.parseInt($("max-tokens").value, 10),
  };
}

function saveSettings() {
  localStorage.setItem(SETTINGS_STORE, JSON.stringify(settings()));
}

function restoreSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_STORE) || "{}");
    if (typeof saved.system === "string") $("system").value = saved.system;
    if (Number.isFinite(saved.temperature)) $("temperature").value = saved.temperature;
    if (Number.isFinite(saved.max_tokens)) $("max-tokens").value = saved.max_tokens;
  } catch (err) {
    localStorage.removeItem(SETTINGS_STORE);
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

// Read an SSE body, calling onEvent with each parsed `data:` payload until [DONE].
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

// Ask for the assistant's reply to the conversation so far, streaming it in.
async function generate() {
  const options = settings();
  const history = options.system
    ? [{ role: "system", content: options.system }, ...chat.messages]
    : [...chat.messages];
  const bubble = addBubble("assistant", "");
  bubble.dataset.state = "streaming";
  const content = bubble.querySelector(".content");
  const controller = (chat.controller = new AbortController());
  setBusy(true);
  const started = performance.now();
  let firstToken = null;
  let text = "";
  let usage = null;
  let finish = null;
  let failed = false;
  try {
    const body = {
      model: chat.model,
      messages: history,
      stream: true,
      stream_options: { include_usage: true },
      temperature: options.temperature,
    };
    if (options.max_tokens > 0) body.max_tokens = options.max_tokens;
    const response = await call("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      const error = await response.json().catch(() => ({}));
      failed = true;
      showError(bubble, error.error || { message: `HTTP ${response.status}` });
      return;
    }
    await readEvents(response, (event) => {
      if (event.error) {
        failed = true;
        showError(bubble, event.error);
        return;
      }
      if (event.usage) usage = event.usage;
      const choice = event.choices && event.choices[0];
      if (!choice) return;
      if (choice.delta && choice.delta.content) {
        if (firstToken === null) firstToken = performance.now();
        text += choice.delta.content;
        content.textContent = text;
        bubble.scrollIntoView({ block: "end" });
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    });
  } catch (err) {
    if (err.name !== "AbortError") {
      failed = true;
      showError(bubble, { message: "Connection failed: " + err.message });
    }
  } finally {
    chat.controller = null;
    setBusy(false);
    const stopped = controller.signal.aborted;
    bubble.dataset.state = failed ? "error" : stopped ? "stopped" : "done";
    // an empty or stopped reply is still a turn: roles keep alternating
    if (!failed) chat.messages.push({ role: "assistant", content: text });
    if (!failed) note(bubble, "usage", describe(usage, finish, stopped, started, firstToken));
  }
}

function describe(usage, finish, stopped, started, firstToken) {
  if (stopped) return "stopped";
  const parts = [];
  if (usage) {
    parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
    const seconds = (performance.now() - (firstToken ?? started)) / 1000;
    if (usage.completion_tokens > 1 && seconds > 0) {
      parts.push(`${(usage.completion_tokens / seconds).toFixed(1)} tokens/s`);
    }
  }
  if (finish === "length") parts.push("cut off at max tokens");
  return parts.join(" · ");
}

function send(event) {
  event.preventDefault();
  const text = $("input").value.trim();
  if (!text || chat.controller) return;
  $("input").value = "";
  chat.messages.push({ role: "user", content: text });
  addBubble("user", text);
  generate();
}

document.addEventListener("DOMContentLoaded", () => {
  restoreSettings();
  $("composer").addEventListener("submit", send);
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });
  $("stop").addEventListener("click", () => chat.controller && chat.controller.abort());
  $("clear").addEventListener("click", () => {
    if (chat.controller) chat.controller.abort();
    chat.messages = [];
    $("messages").replaceChildren();
  });
  for (const id of ["system", "temperature", "max-tokens"]) {
    $(id).addEventListener("change", saveSettings);
  }
  loadModel();
});
