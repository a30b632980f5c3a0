/**
 * The arena: one `WebAssembly.Memory` holding every tensor of a wasm backend, with a
 * size-class pool allocator so that freed blocks are reused and a steady training step
 * allocates no new memory.
 */
import type { DType, Storage } from '../backend.js';
import { MAX_PAGES } from './kernels.js';

const PAGE = 65536;
/** Smallest block; also the alignment of every block, so SIMD loads never straddle lines needlessly. */
const MIN_BLOCK = 64;

/**
 * Size class of a request: round up to a quarter of the enclosing power of two
 * (at least {@link MIN_BLOCK}), which bounds waste at 25% with few classes.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_BLOCK) return MIN_BLOCK;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(MIN_BLOCK, pow / 4);
  return Math.ceil(bytes / step) * step;
}

/** A tensor buffer inside an arena. `ptr` is a byte offset, 64-byte aligned. */
export class WasmStorage implements Storage {
  /** False once freed; guards against double frees (dispose, then the finalizer). */
  alive = true;
  /**
   * The contents are logically zero but the bytes still hold a freed block's data (see
   * {@link Arena.allocLazy}); {@link Arena.materialize} zeroes them.
   */
  pendingZero = false;
  constructor(
    readonly arena: Arena,
    readonly ptr: number,
    readonly size: number,
    readonly dtype: DType,
    readonly capacity: number,
  ) {}
}

/** Counters for tests and benchmarks. */
export interface ArenaStats {
  /** Bytes handed out from the bump pointer so far (high-water mark of the heap). */
  reserved: number;
  /** Current memory size in bytes. */
  memoryBytes: number;
  /** Times the memory grew. */
  grows: number;
  /** Blocks currently allocated to live storages. */
  liveBlocks: number;
}

/** One linear memory plus its allocator, typed views and a reusable scratch block. */
export class Arena {
  readonly memory: WebAssembly.Memory;
  /**
   * Views over the whole memory; rebuilt after every grow (growing detaches them, or for
   * a shared memory leaves them covering only the old size).
   */
  f32!: Float32Array;
  f64!: Float64Array;
  i32!: Int32Array;
  u8!: Uint8Array;
  private top = MIN_BLOCK; // offset 0 stays unused so a zero pointer is never a real block
  private readonly freeLists = new Map<number, number[]>();
  private grows = 0;
  private live = 0;
  private scratchPtr = 0;
  private scratchCap = 0;

  /**
   * @param shared make the memory a shared one, so that worker threads can run kernels
   *   over it. Its maximum is reserved up front (as address space, not memory), and it
   *   only ever grows on the thread that owns the arena, between kernel calls.
   */
  /** memset of arena bytes; the kernel module's once {@link useByteKernels} gave it. */
  private zeroBytes: (ptr: number, bytes: number) => void = (ptr, bytes) => this.u8.fill(0, ptr, ptr + bytes);
  /** memmove of arena bytes; likewise. */
  private copyBytesFn: (src: number, dst: number, bytes: number) => void = (src, dst, bytes) =>
    this.u8.copyWithin(dst, src, src + bytes);

  constructor(
    initialPages = 64,
    readonly shared = false,
  ) {
    this.memory = new WebAssembly.Memory({ initial: initialPages, maximum: MAX_PAGES, shared });
    this.refreshViews();
  }

  /**
   * Zero and move bytes with the kernel module's `memory.fill` and `memory.copy` from now on: on a
   * shared memory the typed-array natives take a slow path (see the `fill` kernel).
   */
  useByteKernels(
    zero: (ptr: number, bytes: number) => void,
    copy: (src: number, dst: number, bytes: number) => void,
  ): void {
    this.zeroBytes = zero;
    this.copyBytesFn = copy;
  }

  /** Zero `bytes` bytes at `ptr`. */
  zero(ptr: number, bytes: number): void {
    if (bytes > 0) this.zeroBytes(ptr, bytes);
  }

  /** Move `bytes` bytes from `src` to `dst` (the ranges may overlap). */
  copy(src: number, dst: number, bytes: number): void {
    if (bytes > 0) this.copyBytesFn(src, dst, bytes);
  }

  private refreshViews(): void {
    const buf = this.memory.buffer;
    this.f32 = new Float32Array(buf);
    this.f64 = new Float64Array(buf);
    this.i32 = new Int32Array(buf);
    this.u8 = new Uint8Array(buf);
  }

  /** A block of at least `bytes` bytes, not zeroed. Returns its offset and class size. */
  allocBytes(bytes: number): { ptr: number; capacity: number } {
    const capacity = sizeClass(bytes);
    this.live++;
    const list = this.freeLists.get(capacity);
    if (list && list.length > 0) return { ptr: list.pop() as number, capacity };
    const ptr = this.top;
    this.ensure(ptr + capacity);
    this.top = ptr + capacity;
    return { ptr, capacity };
  }

  /** Return a block to its size class's free list. */
  freeBytes(ptr: number, capacity: number): void {
    this.live--;
    let list = this.freeLists.get(capacity);
    if (!list) {
      list = [];
      this.freeLists.set(capacity, list);
    }
    list.push(ptr);
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const needPages = Math.ceil((end - have) / PAGE);
    // Grow geometrically so a growing workload does not grow (and re-create views) on every step.
    const pages = Math.max(needPages, Math.ceil(have / PAGE / 2));
    this.memory.grow(pages);
    this.grows++;
    this.refreshViews();
  }

  /** A new zero-filled storage of `size` elements. */
  alloc(size: number, dtype: DType): WasmStorage {
    const bytes = size * (dtype === 'float64' ? 8 : 4);
    const { ptr, capacity } = this.allocBytes(bytes);
    this.zero(ptr, bytes);
    return new WasmStorage(this, ptr, size, dtype, capacity);
  }

  /**
   * A new storage of `size` elements that reads as zeros, zeroed only when first read:
   * a kernel that overwrites it whole never pays for the zeroing. Fresh memory is zero
   * already; a reused block is marked {@link WasmStorage.pendingZero}, so every read of
   * its bytes must go through {@link materialize} first.
   */
  allocLazy(size: number, dtype: DType): WasmStorage {
    const bytes = size * (dtype === 'float64' ? 8 : 4);
    const fresh = this.top;
    const { ptr, capacity } = this.allocBytes(bytes);
    const s = new WasmStorage(this, ptr, size, dtype, capacity);
    s.pendingZero = ptr < fresh && bytes > 0;
    return s;
  }

  /** Zero a storage's bytes if its zeroing was deferred by {@link allocLazy}. */
  materialize(s: WasmStorage): void {
    if (!s.pendingZero) return;
    s.pendingZero = false;
    this.zero(s.ptr, s.size * (s.dtype === 'float64' ? 8 : 4));
  }

  /** Release a storage; a second release is ignored. */
  free(s: WasmStorage): void {
    if (!s.alive) return;
    s.alive = false;
    this.freeBytes(s.ptr, s.capacity);
  }

  /**
   * The scratch block, at least `bytes` long, for packed GEMM panels and host index
   * arrays. Its contents last until the next call. Call it before taking views:
   * enlarging it may grow the memory.
   */
  scratch(bytes: number): number {
    if (bytes > this.scratchCap) {
      if (this.scratchCap > 0) this.freeBytes(this.scratchPtr, this.scratchCap);
      const { ptr, capacity } = this.allocBytes(Math.max(bytes, 4096));
      this.scratchPtr = ptr;
      this.scratchCap = capacity;
    }
    return this.scratchPtr;
  }

  /** Allocation counters. */
  stats(): ArenaStats {
    return { reserved: this.top, memoryBytes: this.memory.buffer.byteLength, grows: this.grows, liveBlocks: this.live };
  }
}
