// The pipelines views land in the next commit.
export function PipelinesView() { return <h1>Pipelines</h1>; }
export function PipelineView({ name }: { name: string }) { return <h1>{name}</h1>; }
export function RunView({ id }: { id: string }) { return <h1>{id}</h1>; }
