// A few lines instead of a framework: `h` builds elements, `mount` sets a region's
// children, `Kept` holds the elements a render must not make again. Text always goes in
// as text nodes, never as HTML.

type Child = Node | string | null | undefined | false;
type Props = Record<string, string | boolean | ((event: Event) => void) | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return element;
}

/**
 * Makes `children` the region's children. A node that is there already stays where it
 * is rather than being taken out and put back: taking a focused field out of the
 * document blurs it, and what the user types next would go nowhere.
 */
export function mount(region: Element, ...children: (Child | Child[])[]): void {
  const next = children
    .flat()
    .filter((child): child is Node | string => !!child)
    .map((child) => (typeof child === "string" ? document.createTextNode(child) : child));
  const staying = new Set(next);
  for (const node of [...region.childNodes]) if (!staying.has(node)) node.remove();
  next.forEach((node, index) => {
    const there = region.childNodes[index] ?? null;
    if (there !== node) region.insertBefore(node, there);
  });
}

/** Elements made once per key and kept across renders, so that what is typed in them stays. */
export class Kept<T extends Element> {
  private readonly made = new Map<string, T>();

  get(key: string, make: () => T): T {
    let element = this.made.get(key);
    if (!element) this.made.set(key, (element = make()));
    return element;
  }

  /** Forgets the elements of keys no longer shown. */
  retain(keys: Iterable<string>): void {
    const shown = new Set(keys);
    for (const key of this.made.keys()) if (!shown.has(key)) this.made.delete(key);
  }
}

/** Reads a form's named fields. */
export function fields(form: HTMLFormElement): Record<string, string> {
  const values: Record<string, string> = {};
  new FormData(form).forEach((value, key) => (values[key] = String(value)));
  return values;
}

export function time(ms: number | bigint): string {
  const date = new Date(Number(ms));
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
}
