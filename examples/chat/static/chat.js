// The chat page: plain JavaScript, no build step. Talks JSON over ws://<this host>/ws
// (the protocol is described in app.py). The nickname and the room are kept in
// localStorage, so a reload joins the same room under the same name.
"use strict";

(() => {
  const NICK_KEY = "pyswoole-chat.nick";
  const ROOM_KEY = "pyswoole-chat.room";
  const TYPING_REFRESH = 2000; // ms between two "typing: true" while typing goes on
  const TYPING_IDLE = 3000; // ms without a keystroke before "typing: false"
  const TYPING_EXPIRE = 6000; // ms a received "typing: true" lasts without a refresh
  const PING_EVERY = 45000; // ms (the server drops connections idle for 150 s)
  const MAX_SHOWN = 500; // messages kept on the page

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    joinForm: $("join-form"),
    nick: $("nick"),
    room: $("room"),
    join: $("join"),
    leave: $("leave"),
    error: $("error"),
    title: $("room-title"),
    messages: $("messages"),
    typing: $("typing"),
    sayForm: $("say-form"),
    text: $("text"),
    send: $("send"),
    members: $("members"),
    count: $("count"),
  };

  const state = {
    ws: null,
    id: null, // our connection id (the server's fd)
    room: null, // the room we are in
    want: null, // {room, nick} to join once connected (again after a reconnect)
    messages: new Map(), // seq -> message, for the current room
    members: [],
    typing: new Map(), // id -> {nick, until}
    retries: 0,
    typingSentAt: 0,
    typingIdle: null,
  };

  function storage(key, value) {
    try {
      if (value === undefined) return localStorage.getItem(key);
      localStorage.setItem(key, value);
    } catch (e) {
      // storage disabled: the page still works, it just forgets across reloads
    }
    return null;
  }

  function setState(name, label) {
    document.body.dataset.state = name;
    ui.status.textContent = label;
  }

  function showError(text) {
    ui.error.textContent = text;
    ui.error.hidden = !text;
  }

  function send(msg) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  // -- connection ------------------------------------------------------------------------

  function connect() {
    setState("connecting", "connecting\u2026");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws");
    state.ws = ws;
    ws.addEventListener("open", () => {
      state.retries = 0;
      setState("online", "online");
      if (state.want) send({ type: "join", room: state.want.room, nick: state.want.nick });
    });
    ws.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (msg && typeof msg.type === "string" && handlers[msg.type]) handlers[msg.type](msg);
    });
    ws.addEventListener("close", () => {
      if (state.ws !== ws) return;
      state.ws = null;
      leftRoom();
      setState("offline", "offline: reconnecting\u2026");
      const delay = Math.min(10000, 500 * 2 ** state.retries);
      state.retries = Math.min(state.retries + 1, 5);
      setTimeout(connect, delay);
    });
  }

  // -- what the server sends -------------------------------------------------------------

  const handlers = {
    hello(msg) {
      state.id = msg.id;
    },
    joined(msg) {
      if (state.room !== msg.room) {
        state.messages.clear();
        state.typing.clear();
        renderMessages();
      }
      state.room = msg.room;
      state.want = { room: msg.room, nick: msg.nick };
      storage(NICK_KEY, msg.nick);
      storage(ROOM_KEY, msg.room);
      window.history.replaceState(null, "", "#" + encodeURIComponent(msg.room));
      ui.nick.value = msg.nick;
      ui.room.value = msg.room;
      ui.title.textContent = "#" + msg.room;
      ui.text.disabled = ui.send.disabled = false;
      ui.text.placeholder = "Message #" + msg.room;
      ui.leave.hidden = false;
      ui.join.textContent = "Rename / switch";
      showError("");
      document.body.dataset.room = msg.room;
      setState("joined", "online as " + msg.nick);
    },
    left() {
      state.want = null;
      leftRoom();
      setState("online", "online");
    },
    history(msg) {
      if (msg.room !== state.room) return;
      for (const m of msg.messages) state.messages.set(m.seq, m);
      renderMessages();
    },
    message(msg) {
      if (msg.room !== state.room) return;
      state.typing.delete(msg.id);
      renderTyping();
      const last = ui.messages.lastElementChild;
      state.messages.set(msg.seq, msg);
      if (!last || Number(last.dataset.seq) < msg.seq) {
        ui.messages.append(messageItem(msg));
        trim();
        ui.messages.scrollTop = ui.messages.scrollHeight;
      } else {
        renderMessages(); // arrived out of order (around a join): redraw in order
      }
    },
    presence(msg) {
      if (msg.room !== state.room) return;
      state.members = msg.members;
      const here = new Set(msg.members.map((m) => m.id));
      for (const id of state.typing.keys()) if (!here.has(id)) state.typing.delete(id);
      renderMembers();
      renderTyping();
    },
    typing(msg) {
      if (msg.room !== state.room || msg.id === state.id) return;
      if (msg.typing) state.typing.set(msg.id, { nick: msg.nick, until: Date.now() + TYPING_EXPIRE });
      else state.typing.delete(msg.id);
      renderTyping();
    },
    error(msg) {
      showError(msg.message + " (" + msg.code + ")");
      if (msg.code.indexOf("nick") >= 0 || msg.code === "bad_room") state.want = null;
    },
    pong() {},
  };

  function leftRoom() {
    state.room = null;
    state.members = [];
    state.messages.clear();
    state.typing.clear();
    delete document.body.dataset.room;
    ui.title.textContent = "Not in a room";
    ui.text.disabled = ui.send.disabled = true;
    ui.text.placeholder = "Join a room to chat";
    ui.leave.hidden = true;
    ui.join.textContent = "Join";
    renderMessages();
    renderMembers();
    renderTyping();
  }

  // -- rendering (textContent only: what people type is never parsed as HTML) -------------

  function messageItem(m) {
    const li = document.createElement("li");
    li.dataset.seq = String(m.seq);
    // ours: said on this connection, or under our name (before a reload, say)
    if (m.id === state.id || (state.want && m.nick === state.want.nick)) li.className = "mine";
    const time = document.createElement("time");
    const when = new Date(m.ts);
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const nick = document.createElement("span");
    nick.className = "nick";
    nick.textContent = m.nick;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    li.append(time, nick, text);
    return li;
  }

  function trim() {
    while (ui.messages.children.length > MAX_SHOWN) {
      state.messages.delete(Number(ui.messages.firstElementChild.dataset.seq));
      ui.messages.firstElementChild.remove();
    }
  }

  function renderMessages() {
    const ordered = [...state.messages.values()].sort((a, b) => a.seq - b.seq);
    ui.messages.replaceChildren(...ordered.map(messageItem));
    trim();
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function renderMembers() {
    ui.members.replaceChildren(
      ...state.members.map((m) => {
        const li = document.createElement("li");
        li.dataset.id = String(m.id);
        li.textContent = m.id === state.id ? m.nick + " (you)" : m.nick;
        if (m.id === state.id) li.className = "me";
        return li;
      }),
    );
    ui.count.textContent = state.members.length ? "(" + state.members.length + ")" : "";
  }

  function renderTyping() {
    const now = Date.now();
    const names = [];
    for (const [id, t] of state.typing) {
      if (t.until < now) state.typing.delete(id);
      else names.push(t.nick);
    }
    names.sort();
    let line = "";
    if (names.length === 1) line = names[0] + " is typing\u2026";
    else if (names.length === 2) line = names[0] + " and " + names[1] + " are typing\u2026";
    else if (names.length > 2) line = names.length + " people are typing\u2026";
    ui.typing.textContent = line;
  }

  // -- what the user does ----------------------------------------------------------------

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const nick = ui.nick.value.trim();
    const room = ui.room.value.trim();
    if (!nick || !room) return;
    state.want = { room, nick };
    if (!send({ type: "join", room, nick })) showError("not connected yet: joining when online");
  });

  ui.leave.addEventListener("click", () => {
    state.want = null;
    send({ type: "leave" });
  });

  function stopTyping() {
    clearTimeout(state.typingIdle);
    state.typingIdle = null;
    if (state.typingSentAt) {
      state.typingSentAt = 0;
      send({ type: "typing", typing: false });
    }
  }

  ui.text.addEventListener("input", () => {
    if (!state.room) return;
    if (!ui.text.value.trim()) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (now - state.typingSentAt > TYPING_REFRESH) {
      state.typingSentAt = now;
      send({ type: "typing", typing: true });
    }
    clearTimeout(state.typingIdle);
    state.typingIdle = setTimeout(stopTyping, TYPING_IDLE);
  });

  ui.sayForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.text.value;
    if (!text.trim() || !state.room) return;
    if (send({ type: "say", text })) {
      ui.text.value = "";
      stopTyping();
    }
  });

  setInterval(renderTyping, 1000); // typing indicators that were not refreshed fade out
  setInterval(() => send({ type: "ping" }), PING_EVERY);

  // -- start: the room from the address (#room) or the last one, the saved nickname --------

  let fromHash = "";
  try {
    fromHash = decodeURIComponent(location.hash.slice(1));
  } catch (e) {
    // a malformed address: ignore it
  }
  const room = fromHash || storage(ROOM_KEY) || "lobby";
  const nick = storage(NICK_KEY);
  ui.room.value = room;
  if (nick) {
    ui.nick.value = nick;
    state.want = { room, nick };
  }
  connect();
})();
