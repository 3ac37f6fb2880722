// A directed graph drawn in layers, left to right (as Orchest's pipeline editor and Neptune's
// recipe pages show them): a node's column is its longest path from a source, its row its
// place in that column. Nodes are focusable buttons (Space/Enter select them) so that a
// selection can be made from the keyboard.
export type GraphNode = { id: string; label: string; state?: string; sub?: string };
export type GraphEdge = { from: string; to: string; label?: string };

const W = 150;
const H = 46;
const GX = 70;
const GY = 24;

export function layout(nodes: GraphNode[], edges: GraphEdge[]) {
  const ids = new Set(nodes.map((n) => n.id));
  const parents = new Map<string, string[]>();
  for (const n of nodes) parents.set(n.id, []);
  for (const e of edges) if (ids.has(e.from) && ids.has(e.to)) parents.get(e.to)!.push(e.from);
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (id: string): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (visiting.has(id)) return 0; // a cycle (refused by the daemon): draw it anyway
    visiting.add(id);
    const d = Math.max(-1, ...parents.get(id)!.map(depthOf)) + 1;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const columns: string[][] = [];
  for (const n of nodes) {
    const d = depthOf(n.id);
    (columns[d] ||= []).push(n.id);
  }
  const pos = new Map<string, { x: number; y: number }>();
  columns.forEach((col, c) =>
    col.forEach((id, r) => pos.set(id, { x: 10 + c * (W + GX), y: 10 + r * (H + GY) })),
  );
  const width = 20 + columns.length * (W + GX) - GX;
  const height = 20 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
  return { pos, width: Math.max(width, W + 20), height };
}

export function Graph({
  nodes,
  edges,
  selected,
  onToggle,
  label,
}: {
  nodes: GraphNode[];
  edges: GraphEdge[];
  selected?: Set<string>;
  onToggle?: (id: string) => void;
  label: string;
}) {
  const { pos, width, height } = layout(nodes, edges);
  return (
    <div class="graph" role="group" aria-label={label}>
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" class="edge-head" />
          </marker>
        </defs>
        {edges.map((e) => {
          const a = pos.get(e.from);
          const b = pos.get(e.to);
          if (!a || !b) return null;
          const x1 = a.x + W;
          const y1 = a.y + H / 2;
          const x2 = b.x;
          const y2 = b.y + H / 2;
          const mx = (x1 + x2) / 2;
          return (
            <g class="edge">
              <path d={`M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`} marker-end="url(#arrow)" />
              {e.label && (
                <text x={mx} y={(y1 + y2) / 2 - 4} text-anchor="middle" class="edge-label">
                  {e.label}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      {nodes.map((n) => {
        const p = pos.get(n.id)!;
        const sel = selected?.has(n.id) ?? false;
        const cls = `gnode ${n.state ? 'st-' + n.state.toLowerCase() : ''} ${sel ? 'selected' : ''}`;
        const style = { left: `${p.x}px`, top: `${p.y}px`, width: `${W}px`, height: `${H}px` };
        const text = (
          <>
            <span class="gnode-title">{n.label}</span>
            <span class="gnode-sub">{n.state ? n.state : n.sub}</span>
          </>
        );
        return onToggle ? (
          <button
            class={cls}
            style={style}
            aria-pressed={sel}
            data-node={n.id}
            title={n.sub}
            onClick={() => onToggle(n.id)}
          >
            {text}
          </button>
        ) : (
          <div class={cls} style={style} data-node={n.id} title={n.sub}>
            {text}
          </div>
        );
      })}
    </div>
  );
}
