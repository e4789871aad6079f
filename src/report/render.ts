/**
 * Draws chart specs on the aggregator, with no browser: Vega renders SVG headless, resvg turns it into
 * PNG. Vega ships as an ES module with top-level await, so it is loaded with a real import().
 */
import type { Resvg as ResvgClass } from '@resvg/resvg-js';
import type { ChartSpec } from './charts';

interface VegaModules {
  vega: { View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string>; finalize(): void }; parse(spec: unknown): unknown };
  vegaLite: { compile(spec: unknown): { spec: unknown } };
}

// TypeScript compiles import() to require() for CommonJS output; this one must stay an import.
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<any>;
let modules: Promise<VegaModules> | undefined;

function loadVega(): Promise<VegaModules> {
  modules ??= Promise.all([importModule('vega'), importModule('vega-lite')]).then(([vega, vegaLite]) => ({ vega, vegaLite }));
  return modules;
}

export async function renderSvg(spec: ChartSpec): Promise<string> {
  const { vega, vegaLite } = await loadVega();
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** At twice the SVG's size, on white: sharp enough for a paper. */
export function svgToPng(svg: string): Buffer {
  // Loaded here, not at import: every process imports the reports, and only an aggregator draws them.
  const { Resvg } = require('@resvg/resvg-js') as { Resvg: typeof ResvgClass };
  const png = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } });
  return Buffer.from(png.render().asPng());
}
