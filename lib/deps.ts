/**
 * Third-party imports, in one place so each can be swapped. Full `npm:` specifiers, not
 * bare names: a module imported by URL cannot see this package's import map, while an
 * `npm:` specifier resolves through the importing project's node_modules/ or through npm.
 *
 * @module
 */
export { parse as parseYaml, stringify as stringifyYaml } from "npm:yaml@^2";
