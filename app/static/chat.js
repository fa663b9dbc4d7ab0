// The chat page: a client of the server's public OpenAI API, nothing private.
// The conversation lives in this page only (the server is stateless), so a reload
// starts an empty chat. Settings are kept in localStorage; an API key only for the
// tab's session (sessionStorage), since the machine may be shared.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "llm-service-api-key";
const SETTINGS_STORE = "llm-service-settings";

const chat = {
  turns: [], // {role, content, bubble}: the history sent with each request
  controller: null, // AbortController of the reply being generated, if any
  epoch: 0, // bumped by "New chat": a reply from an older chat is not recorded
  model: "default",
};

class KeyNeeded extends Error {}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = apiKey();
  if (key) result.Authorization = "Bearer " + key;
  return result;
}

// Ask for a key (the server answered 401). Resolves once one is entered; rejects
// with KeyNeeded when the dialog is dismissed (Escape).
function askForKey(rejected) {
  const dialog = $("key-dialog");
  $("key-error").hidden = !rejected;
  $("key-input").value = "";
  return new Promise((resolve, reject) => {
    dialog.addEventListener(
      "close",
      () => {
        const key = $("key-input").value.trim();
        if (dialog.returnValue !== "use" || !key) {
          reject(new KeyNeeded("This server needs an API key."));
          return;
        }
        sessionStorage.setItem(KEY_STORE, key);
        resolve();
      },
      { once: true },
    );
    dialog.returnValue = "";
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
    $("model").textContent = err instanceof KeyNeeded ? err.message : "server not reachable";
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

function removeTurns(start, count) {
  for (const turn of chat.turns.splice(start, count)) turn.bubble.remove();
}

// After an error the last turn is the unanswered user message: it leaves the history
// (and the screen) before anything else is sent; the error bubbles go too.
function dropUnanswered() {
  const last = chat.turns[chat.turns.length - 1];
  if (last && last.role === "user") removeTurns(chat.turns.length - 1, 1);
  for (const failed of document.querySelectorAll(".message.error")) failed.remove();
}

// An OpenAI error body (HTTP or in-band in the stream), shown under the reply.
function showError(bubble, error) {
  bubble.classList.add("error");
  const line = note(bubble, "error-text", error.message || "The server answered with an error.");
  line.setAttribute("role", "alert");
  const trimmable = error.code === "context_length_exceeded" && chat.turns.length > 2;
  if (!trimmable) {
    // Take the unanswered message back into the input box, to edit or send again.
    const last = chat.turns[chat.turns.length - 1];
    if (last && last.role === "user" && !$("input").value) $("input").value = last.content;
    dropUnanswered();
    bubble.remove();
    $("messages").append(bubble); // the error stays in view until the next send
    return;
  }
  const trim = document.createElement("button");
  trim.className = "trim";
  trim.type = "button";
  trim.textContent = "Trim oldest turns and retry";
  trim.addEventListener("click", () => {
    if (chat.controller) return; // one reply at a time
    bubble.remove();
    removeTurns(0, 2); // the oldest user message and its reply
    generate();
  });
  bubble.append(trim);
}

function settings() {
  const temperature = $("temperature").value.trim();
  return {
    system: $("system").value.trim(),
    temperature: temperature === "" ? null : Number(temperature), // empty: server default
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

class StreamError extends Error {}

// Read an SSE body, calling onEvent with each parsed `data:` payload until [DONE].
// A body that ends before [DONE] was cut off (a proxy, a dropped connection).
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new StreamError("The reply was cut off before it ended.");
    buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(line.startsWith("data: ") ? 6 : 5);
        if (data === "[DONE]") return;
        let event;
        try {
          event = JSON.parse(data);
        } catch (err) {
          throw new StreamError("The server sent an event this page cannot read.");
        }
        onEvent(event);
      }
    }
  }
}

// Ask for the assistant's reply to the conversation so far, streaming it in.
async function generate() {
  const options = settings();
  const history = chat.turns.map(({ role, content }) => ({ role, content }));
  if (options.system) history.unshift({ role: "system", content: options.system });
  const bubble = addBubble("assistant", "");
  bubble.dataset.state = "streaming";
  const content = bubble.querySelector(".content");
  const controller = (chat.controller = new AbortController());
  const epoch = chat.epoch;
  setBusy(true);
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
    };
    if (options.temperature !== null) body.temperature = options.temperature;
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
    if (err.name !== "AbortError" && !failed) {
      failed = true;
      const prefix = err instanceof StreamError || err instanceof KeyNeeded ? "" : "Connection failed: ";
      showError(bubble, { message: prefix + err.message });
    }
  } finally {
    if (chat.controller === controller) chat.controller = null;
    setBusy(chat.controller !== null);
    const stopped = controller.signal.aborted;
    bubble.dataset.state = failed ? "error" : stopped ? "stopped" : "done";
    if (!failed && epoch === chat.epoch) {
      // an empty or stopped reply is still a turn: roles keep alternating
      chat.turns.push({ role: "assistant", content: text, bubble });
      const line = note(bubble, "usage", describe(usage, finish, stopped, firstToken));
      line.setAttribute("role", "status");
    }
  }
}

function describe(usage, finish, stopped, firstToken) {
  if (stopped) return "stopped";
  const parts = [];
  if (usage) {
    parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
    // the first token's time is the prompt's; speed is over the tokens after it
    const seconds = firstToken === null ? 0 : (performance.now() - firstToken) / 1000;
    if (usage.completion_tokens > 1 && seconds > 0) {
      parts.push(`${((usage.completion_tokens - 1) / seconds).toFixed(1)} tokens/s`);
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
  dropUnanswered();
  chat.turns.push({ role: "user", content: text, bubble: addBubble("user", text) });
  generate();
}

document.addEventListener("DOMContentLoaded", () => {
  restoreSettings();
  $("composer").addEventListener("submit", send);
  $("input").addEventListener("keydown", (event) => {
    // Enter also confirms an input method's candidate (pinyin, kana): not a send
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });
  $("stop").addEventListener("click", () => chat.controller && chat.controller.abort());
  $("clear").addEventListener("click", () => {
    chat.epoch += 1;
    if (chat.controller) chat.controller.abort();
    chat.turns = [];
    $("messages").replaceChildren();
  });
  for (const id of ["system", "temperature", "max-tokens"]) {
    $(id).addEventListener("change", saveSettings);
  }
  loadModel();
});
