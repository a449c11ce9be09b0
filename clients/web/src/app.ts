// The signed-in app: one SDK Session for messages and events, gRPC-Web calls for the
// rest (friends, groups, moments), and four tabs: chats, friends, groups, moments.

import {
  ConversationType,
  IndexedDbCursorStore,
  JoinPolicy,
  MessageStatus,
  RevisionKind,
  Session,
  Visibility,
  createClients,
  type Friend,
  type FriendRequest,
  type Group,
  type GimClients,
  type Message,
  type Post,
  type RevisionBody,
  type SessionState,
} from "@gim/sdk";

import { errorText, type SignedIn } from "./auth.js";
import type { WebConfig } from "./config.js";
import { fields, h, Kept, mount, time } from "./dom.js";
import { History, lineOf, recalledText, type Line } from "./history.js";

/** What a notice says after the name of who caused it. */
const NOTICES: Record<string, string> = {
  "friend.requested": "asked to be your friend",
  "friend.accepted": "accepted your friend request",
  "friend.deleted": "is no longer your friend",
  "group.created": "created the group",
  "group.updated": "changed the group",
  "group.dismissed": "dismissed the group",
  "group.member_joined": "joined",
  "group.member_left": "left",
  "group.members_removed": "removed members",
  "group.owner_changed": "handed the group over",
  "moment.posted": "posted a moment",
  "moment.liked": "liked your post",
  "moment.commented": "commented on your post",
  "moment.replied": "replied to your comment",
};

type Tab = "chats" | "friends" | "groups" | "moments";

interface State {
  tab: Tab;
  /** The open conversation: `d:<user>`, `g:<group>` or `s:`. */
  open?: string;
  lines: Map<string, Line[]>;
  unread: Map<string, number>;
  names: Map<string, string>;
  friends: Friend[];
  online: Set<string>;
  requests: FriendRequest[];
  groups: Map<string, Group>;
  feed: Post[];
  connection: SessionState;
  notice: string;
}

export class ChatApp {
  private readonly clients: GimClients;
  private readonly session: Session;
  private readonly state: State;
  private readonly regions = {
    status: h("span", { class: "status" }),
    list: h("aside", { class: "list" }),
    pane: h("section", { class: "pane" }),
    notice: h("div", { class: "notice", role: "status" }),
  };
  private readonly tabs = new Map<Tab, HTMLButtonElement>();
  /** Forms, made once each: a render moves no field the user may be typing in. */
  private readonly forms = new Kept<HTMLFormElement>();
  private readonly memberBoxes = new Kept<HTMLLabelElement>();
  private readonly posts = new Kept<HTMLLIElement>();
  private readonly moments = h("div", { class: "moments" });
  private readonly feed = h("ul", { class: "feed" });

  private constructor(
    private readonly root: Element,
    config: WebConfig,
    private readonly me: SignedIn,
    private readonly history: History,
    stored: Line[],
    private readonly onSignOut: () => void,
  ) {
    this.clients = createClients({ baseUrl: config.apiUrl, token: me.token });
    this.state = {
      tab: "chats",
      lines: new Map(),
      unread: new Map(),
      names: new Map([[me.userId, me.nickname]]),
      friends: [],
      online: new Set(),
      requests: [],
      groups: new Map(),
      feed: [],
      connection: "idle",
      notice: "",
    };
    for (const line of stored) this.append(line);
    this.session = new Session({
      url: config.wsUrl,
      token: me.token,
      identity: { appId: config.appId, userId: me.userId, deviceId: me.deviceId },
      cursorStore: new IndexedDbCursorStore({ databaseName: "gim-web-cursors" }),
    });
  }

  static async start(root: Element, config: WebConfig, me: SignedIn, onSignOut: () => void): Promise<ChatApp> {
    const history = await History.open();
    const app = new ChatApp(root, config, me, history, await history.all(me.userId), onSignOut);
    app.layout();
    app.listen();
    app.session.start();
    await Promise.all([app.loadFriends(), app.loadGroups()]);
    app.render();
    return app;
  }

  // ------------------------------------------------------------ session

  private listen(): void {
    const session = this.session;
    session.on("message", async (message) => {
      if (message.body?.content.case === "revision") {
        await this.revise(message.body.content.value, message);
        this.render();
        return;
      }
      // Deleted by this user on another device before this one synced it.
      if (message.status === MessageStatus.DELETED) return;
      const line = lineOf(message, this.me.userId);
      await this.history.put(line);
      const fresh = this.append(line);
      if (fresh && line.from !== this.me.userId && line.conversation !== this.state.open) {
        this.state.unread.set(line.conversation, (this.state.unread.get(line.conversation) ?? 0) + 1);
      }
      if (fresh && line.conversation === this.state.open) this.markRead(line.conversation);
      this.noticeSystem(message);
      this.render();
    });
    session.on("presence", (presence) => {
      if (presence.online) this.state.online.add(presence.userId);
      else this.state.online.delete(presence.userId);
      this.render();
    });
    session.on("read", (read) => {
      // Another device of this user read a conversation: its badge goes here too.
      if (read.readerUserId !== this.me.userId) return;
      const key = read.conversationType === ConversationType.GROUP ? `g:${read.conversationId}` : `d:${read.conversationId}`;
      this.state.unread.delete(key);
      this.render();
    });
    // What the session recovers from by itself, for whoever opens the console.
    session.on("error", (error) => console.warn("gim session:", error.message));
    session.on("kicked", (kicked) => this.notify(`Signed out: ${kicked.message || "this device was signed out"}`));
    session.on("state", (change) => {
      this.state.connection = change.state;
      // Caught up: the server's counts replace what was counted here while syncing.
      if (change.state === "online") void this.loadUnread().then(() => this.render());
      if (change.state === "stopped" && (change.code === 4001 || change.code === 4003)) {
        this.signOut();
        return;
      }
      this.renderStatus();
    });
  }

  /** Friend and group notices change lists kept here: read them again. */
  private noticeSystem(message: Message): void {
    const content = message.body?.content;
    if (content?.case !== "system") return;
    const event = content.value.event;
    if (event.startsWith("friend.")) void this.loadFriends().then(() => this.render());
    if (event.startsWith("group.")) void this.loadGroups().then(() => this.render());
    if (event.startsWith("moment.") && this.state.tab === "moments") void this.loadFeed().then(() => this.render());
  }

  /** Applies a recall, an edit or a deletion to the lines it names, here and in IndexedDB. */
  private async revise(revision: RevisionBody, message: Message): Promise<void> {
    const ids = new Set(revision.messageIds.map(String));
    // A clearing names its conversation as this user does, and the last seq cleared.
    const cleared =
      revision.kind !== RevisionKind.CLEAR
        ? undefined
        : message.conversationType === ConversationType.GROUP
          ? `g:${message.receiverId}`
          : message.conversationType === ConversationType.DIRECT
            ? `d:${message.receiverId}`
            : "s:";
    for (const [conversation, list] of this.state.lines) {
      const kept: Line[] = [];
      for (const line of list) {
        if (conversation === cleared && BigInt(line.seq) <= revision.upToSeq) {
          await this.history.remove(line.key);
          continue;
        }
        if (!ids.has(line.id)) {
          kept.push(line);
          continue;
        }
        if (revision.kind === RevisionKind.DELETE) {
          await this.history.remove(line.key);
          continue;
        }
        const changed =
          revision.kind === RevisionKind.RECALL
            ? { ...line, text: recalledText(revision.actorUserId) }
            : { ...line, text: `${revision.text?.text ?? line.text} (edited)` };
        await this.history.put(changed);
        kept.push(changed);
      }
      this.state.lines.set(conversation, kept);
    }
  }

  /** Adds a line unless it is there already; whether it was new. */
  private append(line: Line): boolean {
    const list = this.state.lines.get(line.conversation) ?? [];
    if (list.some((known) => known.id === line.id)) return false;
    list.push(line);
    list.sort((a, b) => a.sentAtMs - b.sentAtMs);
    this.state.lines.set(line.conversation, list);
    return true;
  }

  private markRead(conversation: string): void {
    this.state.unread.delete(conversation);
    const last = this.state.lines.get(conversation)?.at(-1);
    const [kind, id] = [conversation.slice(0, 1), conversation.slice(2)];
    if (!last || kind === "s" || this.session.state !== "online") return;
    const type = kind === "g" ? ConversationType.GROUP : ConversationType.DIRECT;
    this.session.markRead(type, id, BigInt(last.seq)).catch(() => undefined);
  }

  // ------------------------------------------------------------ loading

  private async loadFriends(): Promise<void> {
    try {
      const [friends, requests] = await Promise.all([
        this.clients.friends.listFriends({ limit: 200 }),
        this.clients.friends.listRequests({ incoming: true }),
      ]);
      this.state.friends = friends.friends;
      this.state.requests = requests.requests;
      for (const friend of friends.friends) {
        if (friend.user) this.state.names.set(friend.user.userId, friend.remark || friend.user.nickname);
      }
      for (const request of requests.requests) {
        if (request.profile) this.state.names.set(request.fromUserId, request.profile.nickname);
      }
      const ids = friends.friends.map((friend) => friend.user?.userId ?? "").filter(Boolean);
      if (ids.length) {
        const presence = await this.clients.friends.getPresence({ userIds: ids });
        this.state.online = new Set(presence.users.filter((p) => p.online).map((p) => p.userId));
      }
    } catch (error) {
      this.notify(errorText(error));
    }
  }

  private async loadGroups(): Promise<void> {
    try {
      const mine = await this.clients.groups.listMyGroups({ limit: 200 });
      this.state.groups = new Map(mine.groups.map((group) => [group.groupId, group]));
    } catch (error) {
      this.notify(errorText(error));
    }
  }

  /** The unread counts as the server keeps them (exact across the user's devices). */
  private async loadUnread(): Promise<void> {
    try {
      const { conversations } = await this.clients.conversations.listConversations({ limit: 200 });
      this.state.unread.clear();
      for (const conversation of conversations) {
        const key =
          conversation.conversationType === ConversationType.GROUP
            ? `g:${conversation.conversationId}`
            : conversation.conversationType === ConversationType.DIRECT
              ? `d:${conversation.conversationId}`
              : "s:";
        if (conversation.unreadCount > 0n && key !== this.state.open) {
          this.state.unread.set(key, Number(conversation.unreadCount));
        }
      }
    } catch (error) {
      this.notify(errorText(error));
    }
  }

  private async loadFeed(): Promise<void> {
    try {
      this.state.feed = (await this.clients.moments.feed({ limit: 50 })).posts;
    } catch (error) {
      this.notify(errorText(error));
    }
  }

  // ------------------------------------------------------------ actions

  private notify(text: string): void {
    this.state.notice = text;
    this.regions.notice.textContent = text;
    this.regions.notice.hidden = !text;
  }

  /** Runs an action; its error goes to the notice line. */
  private async act(action: () => Promise<unknown>): Promise<boolean> {
    this.notify("");
    try {
      await action();
      return true;
    } catch (error) {
      this.notify(errorText(error));
      return false;
    }
  }

  private openConversation(conversation: string): void {
    this.state.tab = "chats";
    this.state.open = conversation;
    this.markRead(conversation);
    this.render();
  }

  private signOut(): void {
    void this.session.stop();
    this.onSignOut();
  }

  // ------------------------------------------------------------ views

  private layout(): void {
    const nav = h("nav", { class: "tabs" });
    for (const [tab, label] of [
      ["chats", "Chats"],
      ["friends", "Friends"],
      ["groups", "Groups"],
      ["moments", "Moments"],
    ] as [Tab, string][]) {
      const button = h(
        "button",
        {
          "data-tab": tab,
          onclick: () => {
            this.state.tab = tab;
            if (tab === "moments") void this.loadFeed().then(() => this.render());
            this.render();
          },
        },
        label,
      );
      this.tabs.set(tab, button);
      nav.append(button);
    }
    this.regions.notice.hidden = true;
    mount(
      this.root,
      h(
        "div",
        { class: "shell" },
        h(
          "header",
          {},
          h("strong", { class: "brand" }, "gim"),
          h("span", { class: "me" }, `${this.me.nickname} `, h("span", { class: "muted" }, `@${this.me.username}`)),
          this.regions.status,
          h("button", { class: "link", onclick: () => this.signOut() }, "Sign out"),
        ),
        nav,
        this.regions.notice,
        h("div", { class: "body" }, this.regions.list, this.regions.pane),
      ),
    );
  }

  private renderStatus(): void {
    const connection = this.state.connection;
    const label = connection === "online" ? "online" : connection === "stopped" ? "offline" : "connecting…";
    mount(this.regions.status, h("span", { class: `dot ${connection === "online" ? "on" : "off"}` }), label);
    this.regions.status.dataset.state = connection;
  }

  private render(): void {
    for (const [tab, button] of this.tabs) button.classList.toggle("active", tab === this.state.tab);
    this.renderStatus();
    switch (this.state.tab) {
      case "chats":
        mount(this.regions.list, this.conversationList());
        break;
      case "friends":
        mount(this.regions.list, ...this.friendsView());
        break;
      case "groups":
        mount(this.regions.list, ...this.groupsView());
        break;
      case "moments":
        mount(this.regions.list, h("p", { class: "muted pad" }, "Posts of you and your friends."));
        mount(this.regions.pane, this.momentsView());
        return;
    }
    this.renderPane();
  }

  private title(conversation: string): string {
    const id = conversation.slice(2);
    if (conversation === "s:") return "Notifications";
    if (conversation.startsWith("g:")) return this.state.groups.get(id)?.name || id;
    return this.state.names.get(id) || id;
  }

  private name(userId: string): string {
    return this.state.names.get(userId) || userId;
  }

  /** A message's text; a notice in words, with names. */
  private textOf(line: Line): string {
    if (!line.system || !line.actor) return line.text;
    const mine = line.actor === this.me.userId;
    if (mine && line.text === "friend.accepted") return `You and ${this.name(line.target)} are friends now`;
    if (mine && line.text === "friend.requested") return `You asked ${this.name(line.target)} to be your friend`;
    return `${mine ? "You" : this.name(line.actor)} ${NOTICES[line.text] ?? line.text}`;
  }

  private conversationList(): HTMLElement {
    const conversations = [...this.state.lines.entries()]
      .map(([key, lines]) => ({ key, last: lines.at(-1)! }))
      .sort((a, b) => b.last.sentAtMs - a.last.sentAtMs);
    if (!conversations.length) {
      return h("p", { class: "muted pad" }, "No conversations yet. Add a friend, or create a group.");
    }
    return h(
      "ul",
      { class: "items", "aria-label": "Conversations" },
      conversations.map(({ key, last }) => {
        const unread = this.state.unread.get(key) ?? 0;
        const direct = key.startsWith("d:");
        return h(
          "li",
          {
            class: key === this.state.open ? "item selected" : "item",
            "data-conversation": key,
            onclick: () => this.openConversation(key),
          },
          h(
            "div",
            { class: "row" },
            direct && h("span", { class: `dot ${this.state.online.has(key.slice(2)) ? "on" : "off"}` }),
            h("span", { class: "name" }, this.title(key)),
            h("span", { class: "muted small" }, time(last.sentAtMs)),
          ),
          h(
            "div",
            { class: "row" },
            h("span", { class: "preview" }, this.textOf(last)),
            unread > 0 && h("span", { class: "badge" }, String(unread)),
          ),
        );
      }),
    );
  }

  private renderPane(): void {
    const open = this.state.open;
    if (!open) {
      mount(this.regions.pane, h("div", { class: "empty" }, h("p", { class: "muted" }, "Pick a conversation.")));
      return;
    }
    const lines = this.state.lines.get(open) ?? [];
    const id = open.slice(2);
    const messages = h(
      "ol",
      { class: "messages", "aria-label": "Messages" },
      lines.map((line) =>
        h(
          "li",
          { class: line.system ? "system" : line.from === this.me.userId ? "mine" : "theirs", "data-id": line.id },
          !line.system &&
            line.from !== this.me.userId &&
            open.startsWith("g:") &&
            h("span", { class: "from" }, this.name(line.from)),
          h("span", { class: "text" }, this.textOf(line)),
          h("time", {}, time(line.sentAtMs)),
        ),
      ),
    );
    const subtitle = open.startsWith("g:")
      ? `id ${id}`
      : open === "s:"
        ? "friend requests, likes and comments"
        : this.state.online.has(id)
          ? "online"
          : "offline";
    const composer = open === "s:" ? null : this.composer(open);
    mount(
      this.regions.pane,
      h("div", { class: "pane-head" }, h("h2", {}, this.title(open)), h("span", { class: "muted small" }, subtitle)),
      messages,
      composer,
    );
    messages.scrollTop = messages.scrollHeight;
  }

  /** One per conversation, kept across renders: a render never takes what is being typed. */
  private composer(conversation: string): HTMLFormElement {
    return this.forms.get(`composer:${conversation}`, () => {
      const input = h("input", { name: "text", placeholder: "Write a message", autocomplete: "off", "aria-label": "Message" });
      const form = h("form", { class: "composer" }, input, h("button", { type: "submit", class: "primary" }, "Send"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const text = input.value.trim();
        if (!text) return;
        const id = conversation.slice(2);
        void this.act(async () => {
          if (conversation.startsWith("g:")) await this.session.sendGroupText(id, text);
          else await this.session.sendText(id, text);
          input.value = "";
        });
        input.focus();
      });
      return form;
    });
  }

  private friendsView(): Node[] {
    const add = this.forms.get("add-friend", () => {
      const form = h(
        "form",
        { class: "stack pad", "aria-label": "Add a friend" },
        h("input", { name: "username", placeholder: "Their username", required: true, "aria-label": "Username" }),
        h("input", { name: "greeting", placeholder: "Say hello (optional)", "aria-label": "Greeting" }),
        h("button", { type: "submit", class: "primary" }, "Add friend"),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const { username, greeting } = fields(form);
        void this.act(async () => {
          const user = await this.clients.friends.findUser({ username });
          const sent = await this.clients.friends.sendRequest({ userId: user.userId, greeting });
          this.notify(sent.becameFriends ? `You and ${user.nickname} are friends.` : `Request sent to ${user.nickname}.`);
          form.reset();
          await this.loadFriends();
          this.render();
        });
      });
      return form;
    });
    const requests = this.state.requests.map((request) =>
      h(
        "li",
        { class: "item", "data-request": request.fromUserId },
        h("div", { class: "row" }, h("span", { class: "name" }, request.profile?.nickname || request.fromUserId)),
        request.greeting && h("div", { class: "preview" }, request.greeting),
        h(
          "div",
          { class: "row" },
          h("button", { class: "primary", onclick: () => this.answer(request.fromUserId, true) }, "Accept"),
          h("button", { onclick: () => this.answer(request.fromUserId, false) }, "Decline"),
        ),
      ),
    );
    const friends = this.state.friends.map((friend) => {
      const id = friend.user?.userId ?? "";
      return h(
        "li",
        { class: "item", "data-friend": id, onclick: () => this.openConversation(`d:${id}`) },
        h(
          "div",
          { class: "row" },
          h("span", { class: `dot ${this.state.online.has(id) ? "on" : "off"}` }),
          h("span", { class: "name" }, this.name(id)),
          h("span", { class: "muted small" }, this.state.online.has(id) ? "online" : "offline"),
        ),
      );
    });
    return [
      add,
      ...(requests.length ? [h("h3", { class: "pad" }, "Requests"), h("ul", { class: "items" }, requests)] : []),
      h("h3", { class: "pad" }, "Friends"),
      friends.length ? h("ul", { class: "items" }, friends) : h("p", { class: "muted pad" }, "No friends yet."),
    ];
  }

  private answer(userId: string, accept: boolean): void {
    void this.act(async () => {
      await this.clients.friends.answer({ userId, accept });
      await this.loadFriends();
      this.render();
    });
  }

  private groupsView(): Node[] {
    const create = this.forms.get("create-group", () => this.createGroupForm());
    // The friends to pick from change while the form stays; a friend's box keeps its tick.
    const friendIds = this.state.friends.map((friend) => friend.user?.userId ?? "").filter(Boolean);
    this.memberBoxes.retain(friendIds);
    mount(
      create.querySelector(".members")!,
      friendIds.map((id) =>
        this.memberBoxes.get(id, () =>
          h("label", { class: "check" }, h("input", { type: "checkbox", name: `member:${id}` }), this.name(id)),
        ),
      ),
    );
    const join = this.forms.get("join-group", () => {
      const form = h(
        "form",
        { class: "stack pad", "aria-label": "Join a group" },
        h("input", { name: "groupId", placeholder: "Group id", required: true, "aria-label": "Group id" }),
        h("button", { type: "submit" }, "Join group"),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const { groupId } = fields(form);
        void this.act(async () => {
          const joined = await this.clients.groups.joinGroup({ groupId });
          form.reset();
          await this.loadGroups();
          if (joined.joined) this.openConversation(`g:${groupId}`);
          else this.notify("Your request to join was sent to the group's admins.");
        });
      });
      return form;
    });
    const groups = [...this.state.groups.values()].map((group) =>
      h(
        "li",
        { class: "item", "data-group": group.groupId, onclick: () => this.openConversation(`g:${group.groupId}`) },
        h("div", { class: "row" }, h("span", { class: "name" }, group.name), h("span", { class: "muted small" }, group.groupId)),
      ),
    );
    return [
      create,
      join,
      h("h3", { class: "pad" }, "Your groups"),
      groups.length ? h("ul", { class: "items" }, groups) : h("p", { class: "muted pad" }, "No groups yet."),
    ];
  }

  private createGroupForm(): HTMLFormElement {
    const form = h(
      "form",
      { class: "stack pad", "aria-label": "Create a group" },
      h("input", { name: "name", placeholder: "Group name", required: true, "aria-label": "Group name" }),
      h("div", { class: "members" }),
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "open", checked: true }),
        "Anyone with the group's id may join",
      ),
      h("button", { type: "submit", class: "primary" }, "Create group"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = fields(form);
      const memberIds = Object.keys(values)
        .filter((key) => key.startsWith("member:"))
        .map((key) => key.slice(7));
      void this.act(async () => {
        const joinPolicy = values.open ? JoinPolicy.FREE : JoinPolicy.APPROVAL;
        const group = await this.clients.groups.createGroup({ name: values.name, memberIds, joinPolicy });
        form.reset();
        this.state.groups.set(group.groupId, group);
        this.openConversation(`g:${group.groupId}`);
      });
    });
    return form;
  }

  /** The post composer and the feed under it; the composer and each post's reply field stay across renders. */
  private momentsView(): HTMLElement {
    const composer = this.forms.get("post", () => {
      const form = h(
        "form",
        { class: "stack", "aria-label": "New post" },
        h("textarea", { name: "text", placeholder: "What's new?", required: true, rows: "3", "aria-label": "Post" }),
        h("button", { type: "submit", class: "primary" }, "Post to friends"),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const { text } = fields(form);
        void this.act(async () => {
          await this.clients.moments.publish({ content: { text }, visibility: Visibility.FRIENDS });
          form.reset();
          await this.loadFeed();
          this.render();
        });
      });
      return form;
    });
    const feed = this.state.feed;
    this.posts.retain(feed.map((post) => String(post.postId)));
    mount(this.feed, feed.map((post) => this.postItem(post)));
    mount(this.moments, composer, feed.length ? this.feed : h("p", { class: "muted" }, "Nothing posted yet."));
    return this.moments;
  }

  /** A post's item: made once, with its reply field; what it shows is set again at each render. */
  private postItem(post: Post): HTMLLIElement {
    const item = this.posts.get(String(post.postId), () => {
      const comment = h(
        "form",
        { class: "row" },
        h("input", { name: "text", placeholder: "Comment", required: true, "aria-label": "Comment" }),
        h("button", { type: "submit" }, "Reply"),
      );
      comment.addEventListener("submit", (event) => {
        event.preventDefault();
        const { text } = fields(comment);
        void this.act(async () => {
          await this.clients.moments.addComment({ postId: post.postId, text });
          comment.reset();
          await this.loadFeed();
          this.render();
        });
      });
      return h("li", { class: "post", "data-post": String(post.postId) }, h("div", { class: "shown" }), comment);
    });
    const liked = post.likes.some((like) => like.userId === this.me.userId);
    mount(
      item.querySelector(".shown")!,
      h(
        "div",
        { class: "row" },
        h("span", { class: "name" }, this.name(post.authorId)),
        h("span", { class: "muted small" }, time(post.createdAtMs)),
      ),
      h("p", {}, post.content?.text ?? ""),
      h(
        "div",
        { class: "row" },
        h(
          "button",
          {
            class: liked ? "link liked" : "link",
            onclick: () =>
              void this.act(async () => {
                if (liked) await this.clients.moments.unlike({ postId: post.postId });
                else await this.clients.moments.like({ postId: post.postId });
                await this.loadFeed();
                this.render();
              }),
          },
          liked ? "Liked" : "Like",
        ),
        h("span", { class: "muted small likes" }, `${post.likes.length} like${post.likes.length === 1 ? "" : "s"}`),
      ),
      h(
        "ul",
        { class: "comments" },
        post.comments.map((c) => h("li", {}, h("strong", {}, this.name(c.userId)), " ", c.text)),
      ),
    );
    return item;
  }
}
