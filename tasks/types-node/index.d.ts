// Deno provides the node:* declarations itself; this empty package only satisfies its
// lookup of @types/node in a manual node_modules/ where npm cannot be reached.
