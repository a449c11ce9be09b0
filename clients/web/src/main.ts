// gim's web chat app: signs in (or up), then runs the chat app until sign-out.

import "./style.css";

import { authView, signOut, signedIn, type SignedIn } from "./auth.js";
import { ChatApp } from "./app.js";
import { loadConfig, type WebConfig } from "./config.js";
import { h, mount } from "./dom.js";

const root = document.getElementById("app")!;

function run(config: WebConfig): void {
  const user = signedIn(config);
  const start = (user: SignedIn) =>
    void ChatApp.start(root, config, user, () => {
      signOut(config);
      run(config);
    });
  if (user) start(user);
  else authView(root, config, start);
}

loadConfig().then(run, (error: unknown) =>
  mount(root, h("main", { class: "auth" }, h("h1", {}, "gim"), h("p", { class: "problem" }, String(error)))),
);
