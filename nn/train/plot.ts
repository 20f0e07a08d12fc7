// loss.svg: training and validation loss against the update number, as a plain SVG written by
// hand (a polyline per series, axes with round-number ticks, a legend). No dependencies.

export interface Series {
  label: string;
  color: string;
  points: [number, number][]; // [step, loss]; non-finite losses are left out
  markers?: boolean; // draw a dot at each point (for sparse series such as validation)
}

export interface PlotOptions {
  width?: number;
  height?: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
}

// Round tick values covering [lo, hi]: steps of 1, 2 or 5 × 10ᵏ, about `count` of them.
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const num = (v: number) => Number(v.toFixed(2)).toString();

export function lossCurveSvg(series: Series[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 720, H = opts.height ?? 420;
  const m = { left: 64, right: 20, top: 40, bottom: 52 };
  const pw = W - m.left - m.right, ph = H - m.top - m.bottom;
  const clean = series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) }));
  const all = clean.flatMap((s) => s.points);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(opts.title ?? "loss")}</text>`,
  ];
  if (all.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#888">no data yet</text>`, "</svg>");
    return parts.join("\n") + "\n";
  }
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  const pad = (y1 - y0) * 0.05 || Math.abs(y0) * 0.05 || 1;
  y0 -= pad;
  y1 += pad;
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + (1 - (y - y0) / (y1 - y0)) * ph;

  // Grid and ticks.
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${m.left}" y1="${num(sy(t))}" x2="${m.left + pw}" y2="${num(sy(t))}" stroke="#eee"/>`);
    parts.push(`<text x="${m.left - 6}" y="${num(sy(t) + 4)}" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    parts.push(`<line x1="${num(sx(t))}" y1="${m.top}" x2="${num(sx(t))}" y2="${m.top + ph}" stroke="#eee"/>`);
    parts.push(`<text x="${num(sx(t))}" y="${m.top + ph + 16}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 12}" text-anchor="middle">${esc(opts.xLabel ?? "step")}</text>`);
  parts.push(`<text x="16" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${m.top + ph / 2})">${esc(opts.yLabel ?? "loss")}</text>`);

  // Curves, then the legend on top.
  clean.forEach((s) => {
    if (s.points.length === 0) return;
    const pts = s.points.map(([x, y]) => `${num(sx(x))},${num(sy(y))}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts}"><title>${esc(s.label)}</title></polyline>`);
    if (s.markers) for (const [x, y] of s.points) parts.push(`<circle cx="${num(sx(x))}" cy="${num(sy(y))}" r="3" fill="${s.color}"/>`);
  });
  clean.forEach((s, i) => {
    const y = m.top + 14 + i * 16, x = m.left + pw - 130;
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 20}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${x + 26}" y="${y}">${esc(s.label)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
