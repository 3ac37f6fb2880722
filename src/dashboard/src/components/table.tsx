// A table that renders only the rows in view (fixed row height), so that 1,000 services cost
// what 30 do. It stays a real <table>: screen readers get aria-rowcount and each row's index.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export type Column<T> = {
  title: string;
  cell: (row: T) => ComponentChildren;
  width?: string;
};

const ROW = 38;
const OVERSCAN = 3;

export function VirtualTable<T>({
  rows,
  columns,
  rowKey,
  label,
  onVisible,
  height = 600,
}: {
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  label: string;
  onVisible?: (visible: T[]) => void;
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const count = Math.ceil(height / ROW) + 2 * OVERSCAN;
  const shown = rows.slice(first, first + count);
  const key = shown.map(rowKey).join('\n');
  useEffect(() => {
    onVisible?.(shown);
  }, [key]);
  const after = Math.max(0, rows.length - first - shown.length);
  return (
    <div
      class="vtable"
      ref={box}
      style={{ maxHeight: `${height}px` }}
      onScroll={(e) => setTop((e.currentTarget as HTMLDivElement).scrollTop)}
      tabIndex={0}
      role="region"
      aria-label={label}
    >
      <table aria-rowcount={rows.length + 1}>
        <thead>
          <tr aria-rowindex={1}>
            {columns.map((c) => (
              <th scope="col" style={c.width ? { width: c.width } : undefined}>
                {c.title}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {first > 0 && (
            <tr aria-hidden="true" style={{ height: `${first * ROW}px` }}>
              <td colSpan={columns.length} />
            </tr>
          )}
          {shown.map((r, i) => (
            <tr key={rowKey(r)} aria-rowindex={first + i + 2} style={{ height: `${ROW}px` }}>
              {columns.map((c) => (
                <td>{c.cell(r)}</td>
              ))}
            </tr>
          ))}
          {after > 0 && (
            <tr aria-hidden="true" style={{ height: `${after * ROW}px` }}>
              <td colSpan={columns.length} />
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
