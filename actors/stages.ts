/** Which devices belong to which stage: a deterministic rule on the ordered target list. */

/**
 * End index (exclusive) of each stage: stage k covers the first ceil(percent_k% × n) devices, so
 * stage k's own devices are those from the previous stage's end to its end. The last `joined` of
 * the n devices joined later (dynamic targets): they belong to the last stage and move no boundary.
 */
export function stageEnds(
  percents: readonly number[],
  n: number,
  options: { joined?: number } = {},
): number[] {
  const joined = options.joined ?? 0;
  const split = n - joined;
  // Rounded first so 1% of 300 is 3, not ceil(3.0000000000000004) = 4.
  const ends = percents.map((percent) =>
    Math.min(split, Math.ceil(round9((percent * split) / 100)))
  );
  if (joined > 0 && ends.length > 0) ends[ends.length - 1] = n;
  return ends;
}

function round9(value: number): number {
  return Math.round(value * 1e9) / 1e9;
}

/** The stage a device index belongs to, given the stage ends. */
export function stageOf(ends: readonly number[], index: number): number {
  let low = 0;
  let high = ends.length - 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (index < ends[middle]!) high = middle;
    else low = middle + 1;
  }
  return low;
}
