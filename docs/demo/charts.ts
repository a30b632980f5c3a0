/** The demo's charts, drawn with uPlot: one series per method, growing as training runs. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** One colour per method, in the order of the method list. */
export const METHOD_COLORS: Readonly<Record<string, string>> = {
  base: '#d62728',
  aman: '#8c564b',
  oversampling: '#e377c2',
  unbias: '#ff7f0e',
  division: '#bcbd22',
  'esmm-ns': '#17becf',
  esmm: '#1f77b4',
};

/** A line chart over steps with one series per name and optional horizontal reference lines. */
export class LiveChart {
  private readonly plot: uPlot;
  private readonly xs: number[] = [];
  private readonly ys: (number | null)[][];
  private readonly refs: number[];

  constructor(
    host: HTMLElement,
    title: string,
    private readonly names: readonly string[],
    references: readonly { label: string; value: number }[] = [],
    yLabel = '',
  ) {
    host.replaceChildren();
    this.ys = names.map(() => []);
    this.refs = references.map((r) => r.value);
    const series: uPlot.Series[] = [
      { label: 'step' },
      ...names.map((n) => ({ label: n, stroke: METHOD_COLORS[n] ?? '#333', width: 2, spanGaps: true })),
      ...references.map((r) => ({ label: r.label, stroke: '#666', dash: [6, 4], width: 1.5 })),
    ];
    this.plot = new uPlot(
      {
        title,
        width: Math.max(320, host.clientWidth || 460),
        height: 240,
        series,
        scales: { x: { time: false } },
        axes: [{ label: 'step' }, { label: yLabel }],
        legend: { live: false },
      },
      this.data(),
      host,
    );
  }

  /** Appends one x with a value per name (null where a name has none at this x). */
  push(x: number, values: ReadonlyMap<string, number>): void {
    this.xs.push(x);
    this.names.forEach((n, i) => this.ys[i].push(values.get(n) ?? null));
  }

  /** Redraws with everything pushed so far. */
  redraw(): void {
    this.plot.setData(this.data());
  }

  private data(): uPlot.AlignedData {
    return [this.xs, ...this.ys, ...this.refs.map((v) => this.xs.map(() => v))] as uPlot.AlignedData;
  }
}

/** Reliability diagram: mean predicted against mean true pCVR per bin, per method, with the diagonal. */
export function reliabilityChart(
  host: HTMLElement,
  bins: Readonly<Record<string, readonly { meanPredicted: number; meanObserved: number }[]>>,
): void {
  host.replaceChildren();
  const names = Object.keys(bins);
  const xsAll = new Set<number>();
  for (const n of names) for (const b of bins[n]) xsAll.add(b.meanPredicted);
  const hi = Math.max(0.01, ...[...xsAll], ...names.flatMap((n) => bins[n].map((b) => b.meanObserved)));
  xsAll.add(0);
  xsAll.add(hi);
  const xs = [...xsAll].sort((a, b) => a - b);
  const ys = names.map((n) => {
    const at = new Map(bins[n].map((b) => [b.meanPredicted, b.meanObserved]));
    return xs.map((x) => at.get(x) ?? null);
  });
  const data = [xs, xs.map((x) => (x === 0 || x === hi ? x : null)), ...ys] as uPlot.AlignedData;
  new uPlot(
    {
      title: 'Reliability of pCVR (test impressions; y: mean true pCVR)',
      width: Math.max(320, host.clientWidth || 460),
      height: 260,
      scales: { x: { time: false, range: [0, hi] }, y: { range: [0, hi] } },
      axes: [{ label: 'mean predicted pCVR' }, { label: 'mean true pCVR' }],
      series: [
        { label: 'pCVR' },
        { label: 'perfect', stroke: '#999', dash: [4, 4], spanGaps: true, points: { show: false } },
        ...names.map((n) => ({
          label: n,
          stroke: METHOD_COLORS[n] ?? '#333',
          width: 2,
          spanGaps: true,
          points: { show: true, size: 6 },
        })),
      ],
    },
    data,
    host,
  );
}
