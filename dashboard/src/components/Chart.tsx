// Chart.js with only the pieces used here registered (tree-shaken). Every chart is an image
// with a text alternative, and the numbers are also in a table beside it.
import { useEffect, useRef } from "react";
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip, type ChartConfiguration } from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Tooltip, Legend);
Chart.defaults.color = "#cbd5e1";
Chart.defaults.borderColor = "#334155";

export function ChartCanvas({ config, label }: { config: ChartConfiguration; label: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, config);
    return () => chart.destroy();
  }, [config]);
  return <div className="chart"><canvas ref={canvas} role="img" aria-label={label} /></div>;
}
