// Where the page finds gim: the connect node that served it says which app its users
// belong to and where gRPC-Web is (/config.json); sessions go to /ws on the same origin.

export interface WebConfig {
  appId: string;
  apiUrl: string;
  wsUrl: string;
}

export async function loadConfig(): Promise<WebConfig> {
  const response = await fetch("/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`this server gave no /config.json (HTTP ${response.status})`);
  const served = (await response.json()) as { appId: number; apiUrl: string; apiPort: number };
  const { protocol, hostname, host } = window.location;
  return {
    appId: String(served.appId),
    apiUrl: served.apiUrl || `${protocol}//${hostname}:${served.apiPort}`,
    wsUrl: `${protocol === "https:" ? "wss" : "ws"}://${host}/ws`,
  };
}
