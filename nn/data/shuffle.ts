// A tiny seeded generator for data order, kept here so nn/data needs nothing from core.

/**
 * mulberry32: a 32-bit state advanced by a Weyl step (+0x6D2B79F5) and scrambled by two
 * multiply-xorshift rounds. Period 2^32, uniform floats in [0, 1): plenty for shuffling a corpus.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates: every permutation equally likely given a uniform `random`. */
export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}
