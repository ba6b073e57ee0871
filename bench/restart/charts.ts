/**
 * The charts of the restart bench, as standalone SVG (no dependencies):
 *
 * - the timeline: req/s in 100 ms buckets around the restarts, one line per
 *   system, a panel per mode, and under each panel one lane per system with
 *   its restart triggers, its handover (trigger → another pid answers /pid),
 *   failed probes, and the buckets where wrk's requests were lost or got a
 *   non-2xx answer;
 * - the soak: fd count and RSS of each generation of ours.
 *
 * @module
 */

import type { RestartReport, SystemRecord } from "./records.ts";

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"';
const ERROR_COLOR = "#e0161b";

/** Escapes text for SVG. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(
    />/g,
    "&gt;",
  ).replace(/"/g, "&quot;");
}

/**
 * Round tick values inside [min, max], about `count` steps; with `cover`, from
 * at or below `min` to at or above `max` (for an axis that must fit the data).
 */
export function niceTicks(
  min: number,
  max: number,
  count = 5,
  cover = false,
): number[] {
  if (!isFinite(min) || !isFinite(max) || max <= min) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const first = cover
    ? Math.floor(min / step + 1e-9) * step
    : Math.ceil(min / step - 1e-9) * step;
  const last = cover
    ? Math.ceil(max / step - 1e-9) * step
    : Math.floor(max / step + 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; first + i * step <= last + step * 1e-9; i++) {
    ticks.push(Math.round((first + i * step) * 1e6) / 1e6);
  }
  return ticks;
}

function formatCount(value: number): string {
  if (value >= 1000) {
    return `${Math.round(value / 100) / 10}k`.replace(".0k", "k");
  }
  return String(value);
}

interface Lane {
  system: SystemRecord;
  series: { atMs: number; rps: number; bad: number }[];
  triggers: { atMs: number; handoverMs: number | null }[];
  probeFailures: { fromMs: number; toMs: number }[];
}

/**
 * A horizontal grid line across the plot at each of `ticks`, labelled at its
 * left (`sy` maps a value to its y coordinate).
 */
function yGrid(
  ticks: number[],
  left: number,
  width: number,
  sy: (value: number) => number,
  stroke: string,
  label: (tick: number) => string,
): string[] {
  return ticks.map((tick) =>
    `<line x1="${left}" x2="${left + width}" y1="${sy(tick)}" y2="${
      sy(tick)
    }" stroke="${stroke}"/>` +
    `<text x="${left - 6}" y="${
      sy(tick) + 4
    }" font-size="11" text-anchor="end" fill="#444">${label(tick)}</text>`
  );
}

function lanesFor(report: RestartReport, modeIndex: number): Lane[] {
  const lanes: Lane[] = [];
  for (const system of report.systems) {
    const run = system.modes[modeIndex]?.restart;
    if (!run) continue;
    const origin = run.analysis.originMs;
    const probeFailures: { fromMs: number; toMs: number }[] = [];
    for (const restart of run.restarts) {
      const base = restart.atMs - origin;
      for (const failure of restart.probeErrors) {
        const at = base + failure.atMs;
        const last = probeFailures.at(-1);
        if (last !== undefined && at - last.toMs < 30) last.toMs = at + 5;
        else probeFailures.push({ fromMs: at, toMs: at + 5 });
      }
    }
    lanes.push({
      system,
      series: run.analysis.series.map((p) => ({
        atMs: p.atMs,
        rps: p.responses * 10,
        bad: p.lost + p.non2xx,
      })),
      triggers: run.restarts.map((r) => ({
        atMs: r.atMs - origin,
        handoverMs: r.handoverMs,
      })),
      probeFailures,
    });
  }
  return lanes;
}

/** The timeline chart of a report (both modes). */
export function timelineSvg(report: RestartReport): string {
  const width = 1200;
  const left = 170;
  const right = 24;
  const plotHeight = 230;
  const laneHeight = 17;
  const plotWidth = width - left - right;
  const parts: string[] = [];
  let y = 0;

  parts.push(
    `<text x="${left}" y="22" font-size="16" font-weight="600">` +
      `Restarts under load: responses per second in 100 ms buckets</text>`,
  );
  parts.push(
    `<text x="${left}" y="40" font-size="11.5" fill="#444">` +
      escapeXml(
        `wrk -t1 -c${report.config.connections} on CPU ${report.config.clientCpu}, ` +
          `every server on CPU ${report.config.serverCpu}; t = 0 at each system's first restart trigger; ` +
          `${report.config.restarts} restarts, at least ${
            report.config.intervalMs / 1000
          } s apart; ${report.date.slice(0, 10)}${
            report.config.quick ? " (quick run)" : ""
          }`,
      ) + `</text>`,
  );
  // Legend.
  let lx = left;
  const legendY = 60;
  for (const system of report.systems) {
    const label = escapeXml(system.spec.label);
    parts.push(
      `<rect x="${lx}" y="${
        legendY - 9
      }" width="18" height="4" fill="${system.spec.color}"/>` +
        `<text x="${lx + 23}" y="${
          legendY - 3
        }" font-size="11.5">${label}</text>`,
    );
    lx += 30 + label.length * 6.3;
  }
  const keyY = legendY + 18;
  parts.push(
    `<g font-size="11" fill="#333">` +
      `<path d="M ${left} ${keyY - 9} l 8 0 l -4 7 z" fill="#555"/>` +
      `<text x="${left + 12}" y="${keyY - 2}">restart trigger</text>` +
      `<rect x="${left + 110}" y="${
        keyY - 7
      }" width="26" height="5" fill="#555" opacity="0.45"/>` +
      `<text x="${left + 141}" y="${
        keyY - 2
      }">trigger → another pid answers /pid</text>` +
      `<rect x="${left + 350}" y="${
        keyY - 8
      }" width="14" height="7" fill="${ERROR_COLOR}" opacity="0.55"/>` +
      `<text x="${left + 369}" y="${
        keyY - 2
      }">/pid probe refused or failed</text>` +
      `<circle cx="${left + 560}" cy="${
        keyY - 5
      }" r="4" fill="${ERROR_COLOR}"/>` +
      `<text x="${left + 569}" y="${
        keyY - 2
      }">wrk requests lost or non-2xx in that 100 ms (area ~ log count)</text>` +
      `</g>`,
  );
  y = keyY + 14;

  const modeTitles = ["keep-alive", "Connection: close"];
  for (let modeIndex = 0; modeIndex < 2; modeIndex++) {
    const lanes = lanesFor(report, modeIndex);
    if (lanes.length === 0) continue;
    const xMin = -1500;
    let xMax = 0;
    for (const lane of lanes) {
      const last = lane.triggers.at(-1)?.atMs ?? 0;
      xMax = Math.max(xMax, last + report.config.windowMs + 1000);
    }
    const lastPoint = Math.max(
      ...lanes.map((lane) => lane.series.at(-1)?.atMs ?? 0),
    );
    xMax = Math.min(xMax, lastPoint);
    let maxRps = 0;
    for (const lane of lanes) {
      for (const p of lane.series) {
        if (p.atMs >= xMin && p.atMs <= xMax) maxRps = Math.max(maxRps, p.rps);
      }
    }
    const yTicks = niceTicks(0, maxRps * 1.02, 5, true);
    const yMax = Math.max(yTicks.at(-1)!, 1);
    const top = y + 26;
    const sx = (ms: number) => left + (ms - xMin) / (xMax - xMin) * plotWidth;
    const sy = (rps: number) => top + plotHeight - rps / yMax * plotHeight;

    parts.push(
      `<text x="${left}" y="${y + 16}" font-size="14" font-weight="600">` +
        `${escapeXml(modeTitles[modeIndex])}</text>`,
    );
    parts.push(
      `<rect x="${left}" y="${top}" width="${plotWidth}" height="${plotHeight}" fill="#fafafa" stroke="#ccc"/>`,
    );
    parts.push(
      ...yGrid(yTicks, left, plotWidth, sy, "#e4e4e4", formatCount),
    );
    parts.push(
      `<text x="${left - 48}" y="${
        top + plotHeight / 2
      }" font-size="11" fill="#444" ` +
        `transform="rotate(-90 ${left - 48} ${
          top + plotHeight / 2
        })" text-anchor="middle">req/s</text>`,
    );
    const xTicks = niceTicks(xMin / 1000, xMax / 1000, 16);
    const lanesTop = top + plotHeight + 30;
    const lanesBottom = lanesTop + lanes.length * laneHeight;
    for (const tick of xTicks) {
      const x = sx(tick * 1000);
      parts.push(
        `<line x1="${x}" x2="${x}" y1="${top}" y2="${
          top + plotHeight
        }" stroke="#eee"/>` +
          `<line x1="${x}" x2="${x}" y1="${
            lanesTop - 4
          }" y2="${lanesBottom}" stroke="#f0f0f0"/>` +
          `<text x="${x}" y="${
            top + plotHeight + 15
          }" font-size="11" text-anchor="middle" fill="#444">${tick} s</text>`,
      );
    }
    // Lines.
    parts.push(
      `<clipPath id="clip${modeIndex}"><rect x="${left}" y="${top}" width="${plotWidth}" height="${plotHeight}"/></clipPath>`,
    );
    parts.push(`<g clip-path="url(#clip${modeIndex})" fill="none">`);
    for (const lane of lanes) {
      const points = lane.series.filter((p) =>
        p.atMs >= xMin - 100 && p.atMs <= xMax
      ).map((p) => `${sx(p.atMs + 50).toFixed(1)},${sy(p.rps).toFixed(1)}`);
      if (points.length < 2) continue;
      parts.push(
        `<polyline points="${
          points.join(" ")
        }" stroke="${lane.system.spec.color}" ` +
          `stroke-width="${
            lane.system.spec.ours ? 1.8 : 1.3
          }" stroke-linejoin="round" opacity="0.9"/>`,
      );
    }
    parts.push(`</g>`);
    // Lanes.
    lanes.forEach((lane, index) => {
      const mid = lanesTop + index * laneHeight + laneHeight / 2;
      const color = lane.system.spec.color;
      parts.push(
        `<text x="${left - 8}" y="${
          mid + 4
        }" font-size="11" text-anchor="end" fill="${color}" font-weight="${
          lane.system.spec.ours ? 600 : 400
        }">${escapeXml(lane.system.spec.label)}</text>` +
          `<line x1="${left}" x2="${
            left + plotWidth
          }" y1="${mid}" y2="${mid}" stroke="#e6e6e6"/>`,
      );
      for (const failure of lane.probeFailures) {
        if (failure.toMs < xMin || failure.fromMs > xMax) continue;
        const x1 = sx(Math.max(xMin, failure.fromMs));
        const x2 = sx(Math.min(xMax, failure.toMs));
        parts.push(
          `<rect x="${x1.toFixed(1)}" y="${mid - 4}" width="${
            Math.max(1.5, x2 - x1).toFixed(1)
          }" height="8" fill="${ERROR_COLOR}" opacity="0.55"/>`,
        );
      }
      for (const trigger of lane.triggers) {
        if (trigger.atMs < xMin || trigger.atMs > xMax) continue;
        const x = sx(trigger.atMs);
        if (trigger.handoverMs !== null) {
          const x2 = sx(Math.min(xMax, trigger.atMs + trigger.handoverMs));
          parts.push(
            `<rect x="${x.toFixed(1)}" y="${mid - 2.5}" width="${
              Math.max(1, x2 - x).toFixed(1)
            }" height="5" fill="${color}" opacity="0.45"/>`,
          );
        }
        parts.push(
          `<path d="M ${(x - 4).toFixed(1)} ${
            mid - 8
          } l 8 0 l -4 6 z" fill="${color}"/>`,
        );
      }
      for (const point of lane.series) {
        if (point.bad <= 0 || point.atMs < xMin || point.atMs > xMax) continue;
        const r = 2 + 1.6 * Math.log10(point.bad + 1);
        parts.push(
          `<circle cx="${sx(point.atMs + 50).toFixed(1)}" cy="${mid}" r="${
            r.toFixed(1)
          }" fill="${ERROR_COLOR}" opacity="0.85"><title>${point.bad} lost or non-2xx</title></circle>`,
        );
      }
    });
    parts.push(
      `<text x="${left + plotWidth}" y="${
        lanesBottom + 14
      }" font-size="11" text-anchor="end" fill="#444">seconds since the first restart trigger</text>`,
    );
    y = lanesBottom + 26;
  }
  const height = y + 6;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" ${FONT}>\n` +
    `<rect width="${width}" height="${height}" fill="#ffffff"/>\n` +
    parts.join("\n") + "\n</svg>\n";
}

/** The soak chart: fd count and RSS per generation. */
export function soakSvg(report: RestartReport): string {
  const soak = report.soak;
  const width = 960;
  const height = 300;
  const parts: string[] = [];
  if (soak === null || soak.samples.length === 0) {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="40"><text x="10" y="25">no soak data</text></svg>\n`;
  }
  parts.push(
    `<text x="20" y="22" font-size="15" font-weight="600">` +
      escapeXml(
        `Soak: ${soak.completed} restarts of ours (native engine) under wrk keep-alive load`,
      ) + `</text>`,
  );
  parts.push(
    `<text x="20" y="40" font-size="11.5" fill="#444">` +
      escapeXml(
        `each generation's pid, sampled just before the next restart; failed requests: ${soak.failures.total}; ${
          report.date.slice(0, 10)
        }${report.config.quick ? " (quick run)" : ""}`,
      ) + `</text>`,
  );
  const panels: {
    title: string;
    values: { x: number; y: number }[];
    second?: { x: number; y: number }[];
    color: string;
    unit: string;
  }[] = [
    {
      title: "open fds per generation (all; not sockets: dashed)",
      values: soak.samples.filter((s) => s.fds !== null).map((s) => ({
        x: s.generation,
        y: s.fds!,
      })),
      second: soak.samples.filter((s) => s.fds !== null && s.sockets !== null)
        .map((s) => ({ x: s.generation, y: s.fds! - s.sockets! })),
      color: "#1f5fbf",
      unit: "",
    },
    {
      title: "RSS per generation (MiB)",
      values: soak.samples.filter((s) => s.rssKiB !== null).map((s) => ({
        x: s.generation,
        y: Math.round(s.rssKiB! / 1024 * 10) / 10,
      })),
      color: "#d9480f",
      unit: "",
    },
  ];
  const panelWidth = 390;
  const plotHeight = 180;
  panels.forEach((panel, index) => {
    const left = 60 + index * (panelWidth + 90);
    const top = 78;
    const xs = panel.values.map((v) => v.x);
    const ys = [...panel.values, ...(panel.second ?? [])].map((v) => v.y);
    const xMin = 1;
    const xMax = Math.max(2, ...xs);
    const lo = Math.min(...ys);
    const hi = Math.max(...ys);
    const pad = Math.max(1, (hi - lo) * 0.25);
    const yTicks = niceTicks(Math.max(0, lo - pad), hi + pad, 5, true);
    const yMin = yTicks[0];
    const yMax = yTicks.at(-1)! > yMin ? yTicks.at(-1)! : yMin + 1;
    const sx = (x: number) => left + (x - xMin) / (xMax - xMin) * panelWidth;
    const sy = (v: number) =>
      top + plotHeight - (v - yMin) / (yMax - yMin) * plotHeight;
    parts.push(
      `<text x="${left}" y="${top - 10}" font-size="12.5" font-weight="600">${
        escapeXml(panel.title)
      }</text>` +
        `<rect x="${left}" y="${top}" width="${panelWidth}" height="${plotHeight}" fill="#fafafa" stroke="#ccc"/>`,
    );
    parts.push(...yGrid(yTicks, left, panelWidth, sy, "#e6e6e6", String));
    for (
      const tick of niceTicks(xMin, xMax, 8).filter(Number.isInteger)
    ) {
      parts.push(
        `<text x="${sx(tick)}" y="${
          top + plotHeight + 15
        }" font-size="11" text-anchor="middle" fill="#444">${tick}</text>`,
      );
    }
    parts.push(
      `<text x="${left + panelWidth / 2}" y="${
        top + plotHeight + 32
      }" font-size="11" text-anchor="middle" fill="#444">generation</text>`,
    );
    if (panel.second !== undefined && panel.second.length > 1) {
      const dashed = panel.second.map((v) =>
        `${sx(v.x).toFixed(1)},${sy(v.y).toFixed(1)}`
      );
      parts.push(
        `<polyline points="${
          dashed.join(" ")
        }" fill="none" stroke="${panel.color}" stroke-width="1.2" stroke-dasharray="4 3" opacity="0.8"/>`,
      );
    }
    const points = panel.values.map((v) =>
      `${sx(v.x).toFixed(1)},${sy(v.y).toFixed(1)}`
    );
    parts.push(
      `<polyline points="${
        points.join(" ")
      }" fill="none" stroke="${panel.color}" stroke-width="1.4"/>`,
    );
    for (const v of panel.values) {
      parts.push(
        `<circle cx="${sx(v.x).toFixed(1)}" cy="${
          sy(v.y).toFixed(1)
        }" r="1.6" fill="${panel.color}"/>`,
      );
    }
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" ${FONT}>\n` +
    `<rect width="${width}" height="${height}" fill="#ffffff"/>\n` +
    parts.join("\n") + "\n</svg>\n";
}
