// chart.js - a tiny line chart on a canvas: a time window (the data's span,
// at least a minute, at most windowMs), the newest sample at the right edge,
// the y axis from 0 to the window's maximum.

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{color: string, windowMs: number, format?: (v:number)=>string}} opts
   */
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.color = opts.color;
    this.windowMs = opts.windowMs;
    this.format = opts.format || ((v) => String(Math.round(v * 10) / 10));
    this.points = []; // [time_ms, value], oldest first
    this.maxPoints = 2000; // hard cap whatever the interval
  }

  push(t, v) {
    this.points.push([t, v]);
    const cut = t - this.windowMs;
    while (this.points.length && (this.points[0][0] < cut || this.points.length > this.maxPoints))
      this.points.shift();
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || c.width;
    const h = c.clientHeight || c.height;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const pts = this.points;
    const pad = { l: 4, r: 4, t: 14, b: 4 };
    let max = 0;
    for (const [, v] of pts) max = Math.max(max, v);
    const top = max > 0 ? max * 1.15 : 1;
    // grid
    g.strokeStyle = 'rgba(139,147,167,.15)';
    g.lineWidth = 1;
    for (let i = 1; i < 4; i++) {
      const y = pad.t + ((h - pad.t - pad.b) * i) / 4;
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    }
    g.fillStyle = 'rgba(139,147,167,.9)';
    g.font = '10px ui-sans-serif, system-ui, sans-serif';
    g.fillText(`max ${this.format(max)}`, pad.l, 10);
    if (pts.length === 0) return;
    const now = pts[pts.length - 1][0];
    // the x axis spans the data (at least a minute) until the window is full
    const span = Math.min(this.windowMs, Math.max(60000, now - pts[0][0]));
    const x = (t) => pad.l + (w - pad.l - pad.r) * (1 - (now - t) / span);
    const y = (v) => h - pad.b - ((h - pad.t - pad.b) * v) / top;
    g.beginPath();
    pts.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.strokeStyle = this.color;
    g.lineWidth = 2;
    g.lineJoin = 'round';
    g.stroke();
    g.lineTo(x(now), h - pad.b);
    g.lineTo(x(pts[0][0]), h - pad.b);
    g.closePath();
    g.globalAlpha = 0.15;
    g.fillStyle = this.color;
    g.fill();
    g.globalAlpha = 1;
    const [lt, lv] = pts[pts.length - 1];
    g.beginPath();
    g.arc(x(lt), y(lv), 3, 0, Math.PI * 2);
    g.fillStyle = this.color;
    g.fill();
  }
}
