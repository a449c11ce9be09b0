// Signing up and in (the Account API, for apps where gim keeps accounts), and the
// signed-in user kept in localStorage so that a reload stays signed in.

import { ConnectError, DeviceType, createClients } from "@gim/sdk";

import type { WebConfig } from "./config.js";
import { fields, h, mount } from "./dom.js";

export interface SignedIn {
  token: string;
  userId: string;
  nickname: string;
  username: string;
  deviceId: string;
}

const SIGNED_IN = "gim.signedIn";

/** This browser's device id: one per browser profile, kept across sign-ins. */
function deviceId(): string {
  let id = localStorage.getItem("gim.deviceId");
  if (!id) {
    id = `web-${crypto.randomUUID().slice(0, 8)}`;
    localStorage.setItem("gim.deviceId", id);
  }
  return id;
}

export function signedIn(config: WebConfig): SignedIn | undefined {
  const stored = localStorage.getItem(`${SIGNED_IN}.${config.appId}`);
  return stored ? (JSON.parse(stored) as SignedIn) : undefined;
}

export function signOut(config: WebConfig): void {
  localStorage.removeItem(`${SIGNED_IN}.${config.appId}`);
}

export function errorText(error: unknown): string {
  if (error instanceof ConnectError) return error.rawMessage;
  return error instanceof Error ? error.message : String(error);
}

export function authView(root: Element, config: WebConfig, done: (user: SignedIn) => void): void {
  const account = createClients({ baseUrl: config.apiUrl, appId: config.appId }).account;
  let mode: "in" | "up" = "in";
  const problem = h("p", { class: "problem", role: "alert" });
  const form = h("form", { class: "auth-form" });

  const submit = async (event: Event) => {
    event.preventDefault();
    const values = fields(form);
    const device = { deviceId: deviceId(), type: DeviceType.WEB, model: navigator.userAgent.slice(0, 64) };
    problem.textContent = "";
    try {
      const session =
        mode === "up"
          ? await account.signUp({ ...values, nickname: values.nickname || values.username, device } as never)
          : await account.signIn({ username: values.username, password: values.password, device });
      const user: SignedIn = {
        token: session.token,
        userId: session.user?.userId ?? "",
        nickname: session.user?.nickname ?? values.username,
        username: values.username.toLowerCase(),
        deviceId: device.deviceId,
      };
      localStorage.setItem(`${SIGNED_IN}.${config.appId}`, JSON.stringify(user));
      done(user);
    } catch (error) {
      problem.textContent = errorText(error);
    }
  };

  const render = () => {
    mount(
      form,
      h("label", {}, "Username", h("input", { name: "username", autocomplete: "username", required: true })),
      mode === "up" && h("label", {}, "Display name", h("input", { name: "nickname", placeholder: "optional" })),
      h(
        "label",
        {},
        "Password",
        h("input", {
          name: "password",
          type: "password",
          autocomplete: mode === "up" ? "new-password" : "current-password",
          required: true,
          minlength: "8",
        }),
      ),
      problem,
      h("button", { type: "submit", class: "primary" }, mode === "up" ? "Create account" : "Sign in"),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            mode = mode === "up" ? "in" : "up";
            problem.textContent = "";
            render();
          },
        },
        mode === "up" ? "I have an account" : "Create an account",
      ),
    );
  };
  form.addEventListener("submit", submit);
  render();
  mount(
    root,
    h(
      "main",
      { class: "auth" },
      h("h1", {}, "gim"),
      h("p", { class: "muted" }, "Instant messaging on your own server."),
      form,
    ),
  );
}
