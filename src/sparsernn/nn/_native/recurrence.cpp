// The time loop of one block-diagonal recurrent layer, forward and backward, in one call each,
// and (Net, at the end) a whole structure network's layer schedule of such layers.
//
// A wide layer of a random-structure network (sparsernn.nn.structured) stacks the sub-layers
// that read one source layer: W units in all, split into diagonal blocks (offset, size). Its
// hidden-to-hidden matrix (G*W, W) is block-diagonal, so a gate row of one block only reads its
// own block's units, and its input-to-hidden matrix (G*W, I) is masked by the graph's edges.
// Run step by step from Python, each of the T steps costs ~20 small torch calls; here the whole
// loop is one call, both products touch only the entries the masks keep (the i2h mask as a CSR
// row list, the h2h as its blocks), and every loop runs over the batch, the innermost
// (contiguous) dimension of every sequence buffer:
//
//   x       (T, I, B)    the layer's input sequence
//   w_ih    (G*W, I)     weights, gate-major rows (row = gate*W + unit) as in PyTorch, read
//                        only where row_ptr (G*W+1) / cols list a row's kept columns
//   w_hh    (G*W, W)     weights, read on the diagonal blocks only
//   b_ih, b_hh (G*W,)    biases (either may be null)
//   hs      (T+1, W, B)  hidden states; forward sets hs[0] = 0 (the structure networks
//                        start from zero) and writes every later step
//   cs      (T+1, W, B)  LSTM cell states, likewise
//   acts    (T, A*W, B)  what backward needs: GRU r, z, n, W_hn h + b_hn (A = 4); LSTM
//                        i, f, g, o, tanh(c) (A = 5); nothing for Elman cells
//
// Gate order and equations are PyTorch's (nn.RNN, nn.GRU, nn.LSTM). Every buffer is
// C-contiguous and of one scalar type (float or double). The exponential is a Cody-Waite
// reduction and a polynomial written so that GCC vectorises it (libm's expf does not).
// No -ffast-math: results differ from PyTorch's kernels only by float rounding.

#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

namespace {

enum Family { ELMAN_TANH = 0, ELMAN_RELU = 1, GRU = 2, LSTM = 3 };

template <typename S> struct ExpConst;

template <> struct ExpConst<float> {
    using Bits = int32_t;
    static constexpr float lo = -87.0f, hi = 87.0f;  // results stay normal numbers
    static constexpr float log2e = 1.44269504088896341f;
    static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    static constexpr float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    static constexpr Bits magic_bits = 0x4B400000, bias = 127, shift = 23;
    static inline float poly(float r) {  // exp(r) on |r| <= ln2/2 (Cephes' expf)
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        return p * r * r + r + 1.0f;
    }
};

template <> struct ExpConst<double> {
    using Bits = int64_t;
    static constexpr double lo = -708.0, hi = 708.0;
    static constexpr double log2e = 1.4426950408889634074;
    static constexpr double ln2_hi = 0.693145751953125, ln2_lo = 1.42860682030941723212e-6;
    static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
    static constexpr Bits magic_bits = 0x4338000000000000LL, bias = 1023, shift = 52;
    static inline double poly(double r) {  // Taylor to r^13: error < 1e-17 on |r| <= ln2/2
        double p = 1.0 / 6227020800.0;
        p = p * r + 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        return p * r * r + r + 1.0;
    }
};

// exp(x) for x clamped to the range where the result is a normal number.
template <typename S> inline S vexp(S x) {
    using C = ExpConst<S>;
    using Bits = typename C::Bits;
    x = x < C::lo ? C::lo : x;
    x = x > C::hi ? C::hi : x;
    S shifted = x * C::log2e + C::magic;  // round(x / ln2) in the low mantissa bits
    S n = shifted - C::magic;
    S r = x - n * C::ln2_hi;
    r = r - n * C::ln2_lo;
    Bits k;
    std::memcpy(&k, &shifted, sizeof k);
    Bits e = ((k - C::magic_bits) + C::bias) << C::shift;  // 2^n as a bit pattern
    S scale;
    std::memcpy(&scale, &e, sizeof scale);
    return C::poly(r) * scale;
}

template <typename S> inline S vsigmoid(S x) { return S(1) / (S(1) + vexp(-x)); }
// tanh(x) = (1 - e) / (1 + e) with e = exp(-2x): vexp's clamp keeps e finite, so large
// negative x give -1, not inf/inf; ~1-2 ulps for |x| away from 0, and NaN stays NaN (a
// diverging training run must show a NaN loss).
template <typename S> inline S tanh_form(S x) {
    const S e = vexp(S(-2) * x);
    return (S(1) - e) / (S(1) + e);
}

// Near 0 the form loses relative accuracy (1 - e cancels; in float ~4e-7 at |x| = 1/4, which
// gradient sums accumulate), so below |x| = 1/4 (float) or 1/64 (double) the odd Taylor
// series to x^9 is used: its truncation there is under half an ulp (1.5e-8 relative at 1/4,
// 1e-20 at 1/64), and the form's error at the switch is ~2 float ulps (4e-15 in double).
template <typename S> inline S vtanh(S x) {
    constexpr S switch2 = sizeof(S) == 4 ? S(1.0 / 16) : S(1.0 / 4096);  // |x|^2 threshold
    const S x2 = x * x;
    S p = S(62.0 / 2835.0);
    p = p * x2 - S(17.0 / 315.0);
    p = p * x2 + S(2.0 / 15.0);
    p = p * x2 - S(1.0 / 3.0);
    const S series = x + x * x2 * p;
    return x2 < switch2 ? series : tanh_form(x);
}

// One layer and its buffers; the same struct (sparsernn.nn.native.LayerArgs) on both sides.
struct Layer {
    int64_t family, steps, batch, width, gates, in_size, n_blocks;
    const int64_t *offsets, *sizes;   // diagonal blocks of w_hh
    const int64_t *row_ptr, *cols;    // w_ih's kept entries by row (CSR) ...
    const int64_t *col_ptr, *rows;    // ... and by column (CSC)
    const void *x, *w_ih, *b_ih, *w_hh, *b_hh;  // inputs
    void *hs, *cs, *acts;                       // forward results (saved for backward)
    const void *g_out;                          // backward: gradient of hs[1:]
    void *d_x, *d_w_ih, *d_b_ih, *d_w_hh, *d_b_hh;  // backward results (overwritten)
    // Within a whole schedule (Net below), per block: its destination layer's (T, size, B)
    // output, which forward adds the block's states into step by step, and in backward that
    // output's gradient, read in place of g_out. Null for a layer run on its own.
    void *const *block_io;
    int64_t add_d_x;  // backward adds the input gradient into d_x instead of overwriting it
};

template <typename S> struct Bufs {  // the Layer's pointers, typed
    const S *x, *w_ih, *b_ih, *w_hh, *b_hh, *g_out;
    S *hs, *cs, *acts, *d_x, *d_w_ih, *d_b_ih, *d_w_hh, *d_b_hh;
    explicit Bufs(const Layer &L)
        : x((const S *)L.x), w_ih((const S *)L.w_ih), b_ih((const S *)L.b_ih),
          w_hh((const S *)L.w_hh), b_hh((const S *)L.b_hh), g_out((const S *)L.g_out),
          hs((S *)L.hs), cs((S *)L.cs), acts((S *)L.acts), d_x((S *)L.d_x),
          d_w_ih((S *)L.d_w_ih), d_b_ih((S *)L.d_b_ih), d_w_hh((S *)L.d_w_hh),
          d_b_hh((S *)L.d_b_hh) {}
};

// The kernel's own buffers start on a 64-byte boundary, as torch's do: a vector load of a
// row never straddles two cache lines (malloc aligns large blocks to 16 bytes only).
template <typename S> struct Aligned {
    using value_type = S;
    Aligned() = default;
    template <typename U> Aligned(const Aligned<U> &) {}
    S *allocate(std::size_t n) {
        return static_cast<S *>(::operator new(n * sizeof(S), std::align_val_t(64)));
    }
    void deallocate(S *ptr, std::size_t) { ::operator delete(ptr, std::align_val_t(64)); }
    template <typename U> bool operator==(const Aligned<U> &) const { return true; }
    template <typename U> bool operator!=(const Aligned<U> &) const { return false; }
};
template <typename S> using Buf = std::vector<S, Aligned<S>>;

// Batch chunks: CH values (four 64-byte vectors) are accumulated in registers across a whole
// sum before they are stored once; n < CH only in the last chunk of a batch. Four, not two:
// the state gradient's sums are single chains per vector, and four hide the FMA latency.
template <typename S> constexpr int64_t chunk() { return 256 / sizeof(S); }

// Every product below walks the batch in chunks of CH values. `Full` chunks have the
// compile-time length CH, so their accumulators stay in registers across the whole sum; only
// the batch's last chunk, of n < CH values, takes the generic path.
#define SRNN_CHUNKS(B, CH, CALL)                                                              \
    for (int64_t c0 = 0; c0 < (B); c0 += (CH)) {                                              \
        if ((B) - c0 >= (CH)) {                                                                \
            constexpr bool Full = true;                                                       \
            const int64_t n = (CH);                                                           \
            CALL;                                                                             \
        } else {                                                                              \
            constexpr bool Full = false;                                                      \
            const int64_t n = (B) - c0;                                                       \
            CALL;                                                                             \
        }                                                                                     \
    }

// A masked weight matrix's kept entries in the order of one of its compressed lists (CSR rows
// or CSC columns), so that the inner loops read their weights contiguously instead of gathering
// them: entry k of outer index o is w[o * outer_stride + index[k] * index_stride].
template <typename S>
Buf<S> packed(const S *w, const int64_t *ptr, const int64_t *index, int64_t n_outer,
              int64_t outer_stride, int64_t index_stride) {
    Buf<S> out(ptr[n_outer]);
    for (int64_t o = 0; o < n_outer; ++o)
        for (int64_t k = ptr[o]; k < ptr[o + 1]; ++k)
            out[k] = w[o * outer_stride + index[k] * index_stride];
    return out;
}

// 64-byte vectors of GCC's vector extension (one typedef per scalar type: an alias template
// drops the attribute). A chunk's accumulators are arrays of these, so they stay in registers;
// written as arrays of scalars with `omp simd`, GCC vectorised the loop over the entries
// instead (gathers, and the sums kept on the stack: the input products ran 1.6-2.6x slower).
typedef float f32x16 __attribute__((vector_size(64)));
typedef double f64x8 __attribute__((vector_size(64)));
template <typename S> struct Vec;
template <> struct Vec<float> { using type = f32x16; };
template <> struct Vec<double> { using type = f64x8; };

template <typename S> inline typename Vec<S>::type vload(const S *p) {
    typename Vec<S>::type v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <typename S> inline void vstore(S *p, typename Vec<S>::type v) {
    std::memcpy(p, &v, sizeof v);
}

// How a chunk of the batch is held: a full chunk as CH / L vectors E of L values each, the
// batch's last, shorter chunk as n single values. The products below are written once over
// `count(n)` elements E at `step` values apart.
template <typename S, bool Full> struct Pack {
    using E = std::conditional_t<Full, typename Vec<S>::type, S>;
    static constexpr int64_t step = sizeof(E) / sizeof(S), cap = chunk<S>() / step;
    static int64_t count(int64_t n) { return Full ? cap : n; }
    static E load(const S *p) {
        if constexpr (Full) return vload(p);
        else return *p;
    }
    static void store(S *p, E v) {
        if constexpr (Full) vstore(p, v);
        else *p = v;
    }
};

// One chunk of a product with a compressed (CSR or CSC) matrix: out[o] = b0 + sum over the
// entries k of line o (ptr[o] .. ptr[o+1]) of w[k] * src[index[k]], rows of B values. Both
// input products use it: by rows forward (x -> gate rows), by columns backward (gate-row
// gradients -> input gradient); w holds the kept weights packed in that order. `add`: out[o]
// is added to (its old value in place of b0).
template <typename S, bool Full>
inline void compressed_chunk(const int64_t *ptr, const int64_t *index, const S *w, S b0,
                             const S *src, S *out, int64_t o, int64_t B, int64_t c0,
                             int64_t n, bool add = false) {
    using P = Pack<S, Full>;
    const int64_t m = P::count(n);
    S *dst = out + o * B + c0;
    typename P::E acc[P::cap];
    for (int64_t j = 0; j < m; ++j)
        acc[j] = add ? P::load(dst + j * P::step) : typename P::E{} + b0;
    for (int64_t k = ptr[o]; k < ptr[o + 1]; ++k) {
        const S *sc = src + index[k] * B + c0;
        for (int64_t j = 0; j < m; ++j) acc[j] += w[k] * P::load(sc + j * P::step);
    }
    for (int64_t j = 0; j < m; ++j) P::store(dst + j * P::step, acc[j]);
}

// out[row] = bias[row] + sum over the row's kept columns c of w[row, c] * x[c]: the masked
// input product of one step (x is (I, B); wx holds w's kept entries packed by row).
template <typename S>
void input_product(const Layer &L, const S *wx, const S *bias, const S *x, S *out) {
    constexpr int64_t CH = chunk<S>();
    for (int64_t row = 0; row < L.gates * L.width; ++row) {
        const S b0 = bias ? bias[row] : S(0);
        SRNN_CHUNKS(L.batch, CH, (compressed_chunk<S, Full>(L.row_ptr, L.cols, wx, b0, x, out,
                                                            row, L.batch, c0, n)))
    }
}

// The masked input product folded into the recurrent one: w_ih's kept entries packed by row
// (wx) and the step's input x (I, B). Null wx: the input product is computed apart.
template <typename S> struct Fold {
    const S *wx = nullptr, *x = nullptr;
};

// One chunk of unit u's G gate rows of the block-diagonal product (see recurrent_product).
template <typename S, int G, bool Full>
inline void recurrent_chunk(const Layer &L, const S *w, const S *bias, const S *h, S *out,
                            Fold<S> in, int64_t off, int64_t size, int64_t u, int64_t c0,
                            int64_t n) {
    using P = Pack<S, Full>;
    const int64_t m = P::count(n), B = L.batch, W = L.width;
    typename P::E acc[G][P::cap];
    for (int g = 0; g < G; ++g) {
        const S b0 = bias ? bias[g * W + u] : S(0);
        for (int64_t j = 0; j < m; ++j) acc[g][j] = typename P::E{} + b0;
        if (!in.wx) continue;
        const int64_t row = g * W + u;
        for (int64_t k = L.row_ptr[row]; k < L.row_ptr[row + 1]; ++k) {
            const S *xc = in.x + L.cols[k] * B + c0;
            for (int64_t j = 0; j < m; ++j) acc[g][j] += in.wx[k] * P::load(xc + j * P::step);
        }
    }
    for (int64_t v = off; v < off + size; ++v) {
        typename P::E hv[P::cap];
        for (int64_t j = 0; j < m; ++j) hv[j] = P::load(h + v * B + c0 + j * P::step);
        for (int g = 0; g < G; ++g) {
            const S a = w[(g * W + u) * W + v];
            for (int64_t j = 0; j < m; ++j) acc[g][j] += a * hv[j];
        }
    }
    for (int g = 0; g < G; ++g)
        for (int64_t j = 0; j < m; ++j)
            P::store(out + (g * W + u) * B + c0 + j * P::step, acc[g][j]);
}

// out[row] = bias[row] + sum over the row's block of w[row, v] * h[v] for the G gate rows of
// every unit at once (they read the same h[v]): the block-diagonal product W_hh h of one step,
// plus the row's input product where `in` carries one (the whole pre-activation: the gate
// sums stay in registers, and the gate math reads one buffer instead of two).
template <typename S, int G>
void recurrent_product(const Layer &L, const S *w, const S *bias, const S *h, S *out,
                       Fold<S> in = {}) {
    constexpr int64_t CH = chunk<S>();
    for (int64_t j = 0; j < L.n_blocks; ++j) {
        const int64_t off = L.offsets[j], size = L.sizes[j];
        for (int64_t u = off; u < off + size; ++u) {
            SRNN_CHUNKS(L.batch, CH,
                        (recurrent_chunk<S, G, Full>(L, w, bias, h, out, in, off, size, u, c0, n)))
        }
    }
}

// One chunk of unit v's state gradient (see recurrent_product_t).
template <typename S, int G, bool Full>
inline void recurrent_t_chunk(const Layer &L, const S *w, const S *d, S *dh, int64_t off,
                              int64_t size, int64_t v, int64_t c0, int64_t n) {
    using P = Pack<S, Full>;
    const int64_t m = P::count(n), B = L.batch, W = L.width;
    S *out = dh + v * B + c0;
    typename P::E acc[P::cap];
    for (int64_t j = 0; j < m; ++j) acc[j] = P::load(out + j * P::step);
    for (int g = 0; g < G; ++g) {
        for (int64_t u = off; u < off + size; ++u) {
            const S a = w[(g * W + u) * W + v];
            const S *dr = d + (g * W + u) * B + c0;
            for (int64_t j = 0; j < m; ++j) acc[j] += a * P::load(dr + j * P::step);
        }
    }
    for (int64_t j = 0; j < m; ++j) P::store(out + j * P::step, acc[j]);
}

// dh[v] += sum over the block's rows of w[row, v] * d[row]: the recurrent part of one
// step's state gradient (W_hh^T d).
template <typename S, int G>
void recurrent_product_t(const Layer &L, const S *w, const S *d, S *dh) {
    constexpr int64_t CH = chunk<S>();
    for (int64_t j = 0; j < L.n_blocks; ++j) {
        const int64_t off = L.offsets[j], size = L.sizes[j];
        for (int64_t v = off; v < off + size; ++v) {
            SRNN_CHUNKS(L.batch, CH, (recurrent_t_chunk<S, G, Full>(L, w, d, dh, off, size, v, c0, n)))
        }
    }
}

// Per-lane partial sums of one weight's gradient: V lanes (one 64-byte vector), added to across
// the whole sequence and reduced to one number once, at the end (see Partials).
template <typename S> constexpr int64_t lanes() { return 64 / sizeof(S); }

// part[k][0..V) += sum over b of a[k][b] * y[b], for N rows a[k] that share y: N
// independent accumulator chains in registers over the whole batch (N weights' gradients at
// one step; the lanes are summed only at the end of the sequence).
template <typename S, int N>
inline void dots(S *const *part, const S *const *a, const S *y, int64_t batch) {
    constexpr int64_t V = lanes<S>();
    const int64_t full = batch - batch % V;
    S acc[N][V] = {};
    for (int64_t b0 = 0; b0 < full; b0 += V) {
        for (int k = 0; k < N; ++k) {
#pragma omp simd
            for (int64_t i = 0; i < V; ++i) acc[k][i] += a[k][b0 + i] * y[b0 + i];
        }
    }
    for (int k = 0; k < N; ++k) {
#pragma omp simd
        for (int64_t i = 0; i < V; ++i) part[k][i] += acc[k][i];
        for (int64_t b = full; b < batch; ++b) part[k][b - full] += a[k][b] * y[b];
    }
}

// part[0..V) += the batch's values of a, lane-wise.
template <typename S> inline void sums(S *part, const S *a, int64_t batch) {
    constexpr int64_t V = lanes<S>();
    const int64_t full = batch - batch % V;
    S acc[2][V] = {};
    int64_t b0 = 0;
    for (; b0 + 2 * V <= full; b0 += 2 * V) {
#pragma omp simd
        for (int64_t i = 0; i < V; ++i) {
            acc[0][i] += a[b0 + i];
            acc[1][i] += a[b0 + V + i];
        }
    }
    for (; b0 < full; b0 += V) {
#pragma omp simd
        for (int64_t i = 0; i < V; ++i) acc[0][i] += a[b0 + i];
    }
#pragma omp simd
    for (int64_t i = 0; i < V; ++i) part[i] += acc[0][i] + acc[1][i];
    for (int64_t b = full; b < batch; ++b) part[b - full] += a[b];
}

// The gradients of every kept weight and bias as per-lane partial sums, in the order
// `finish` reads them: w_ih's CSR entries, w_hh's block entries (g, u, v), b_ih, b_hh.
template <typename S> struct Partials {
    Buf<S> ih, hh, b_ih, b_hh;
    Partials(const Layer &L, int64_t hh_entries)
        : ih(L.row_ptr[L.gates * L.width] * lanes<S>(), S(0)),
          hh(hh_entries * lanes<S>(), S(0)),
          b_ih(L.gates * L.width * lanes<S>(), S(0)),
          b_hh(L.gates * L.width * lanes<S>(), S(0)) {}
    static S total(const S *part) {
        S sum = 0;
        for (int64_t i = 0; i < lanes<S>(); ++i) sum += part[i];
        return sum;
    }
};

// Within a schedule: each block's new states (rows off .. off+size of h1) added into step t
// of its destination layer's output, while they are still in cache.
template <typename S> void add_block_states(const Layer &L, const S *h1, int64_t t) {
    for (int64_t j = 0; j < L.n_blocks; ++j) {
        const int64_t n = L.sizes[j] * L.batch;
        S *out = (S *)L.block_io[j] + t * n;
        const S *h = h1 + L.offsets[j] * L.batch;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) out[i] += h[i];
    }
}

// Within a schedule: step t's gradient of the states, gathered from the blocks' destination
// layers' output gradients (the rows of g_out a single layer would be given).
template <typename S> void gather_block_grads(const Layer &L, S *go, int64_t t) {
    for (int64_t j = 0; j < L.n_blocks; ++j) {
        const int64_t n = L.sizes[j] * L.batch;
        std::memcpy(go + L.offsets[j] * L.batch, (const S *)L.block_io[j] + t * n, n * sizeof(S));
    }
}

template <typename S, int G> void forward(const Layer &L) {
    const Bufs<S> p(L);
    const int64_t B = L.batch, W = L.width, WB = W * B;
    // GRU's n gate needs W_in x and W_hn h apart (r multiplies only the latter), so a GRU
    // keeps the input product in xg; the other cells fold it into gh, the whole pre-activation.
    const bool fold = L.family != GRU;
    Buf<S> xg_buf(fold ? 0 : G * WB), gh_buf(G * WB), bias(G * W, S(0));
    const Buf<S> wx = packed(p.w_ih, L.row_ptr, L.cols, G * W, L.in_size, 1);
    S *xg = xg_buf.data(), *gh = gh_buf.data();
    for (int64_t r = 0; r < G * W; ++r)
        bias[r] = (p.b_hh ? p.b_hh[r] : S(0)) + (fold && p.b_ih ? p.b_ih[r] : S(0));
    std::memset(p.hs, 0, WB * sizeof(S));  // zero initial states; the caller leaves the
    if (L.family == LSTM) std::memset(p.cs, 0, WB * sizeof(S));  // buffers uninitialised
    for (int64_t t = 0; t < L.steps; ++t) {
        const S *h = p.hs + t * WB;
        S *h1 = p.hs + (t + 1) * WB;
        const S *x = p.x + t * L.in_size * B;
        if (fold) {
            recurrent_product<S, G>(L, p.w_hh, bias.data(), h, gh, Fold<S>{wx.data(), x});
        } else {
            input_product(L, wx.data(), p.b_ih, x, xg);
            recurrent_product<S, G>(L, p.w_hh, bias.data(), h, gh);
        }
        if (L.family == ELMAN_TANH || L.family == ELMAN_RELU) {
            const bool relu = L.family == ELMAN_RELU;
#pragma omp simd
            for (int64_t i = 0; i < WB; ++i) {
                const S pre = gh[i];
                h1[i] = relu ? (pre > S(0) ? pre : S(0)) : vtanh(pre);
            }
        } else if (L.family == GRU) {
            S *a = p.acts + t * 4 * WB;  // r, z, n, ghn
#pragma omp simd
            for (int64_t i = 0; i < WB; ++i) {
                const S r = vsigmoid(xg[i] + gh[i]);
                const S z = vsigmoid(xg[WB + i] + gh[WB + i]);
                const S ghn = gh[2 * WB + i];
                const S n = vtanh(xg[2 * WB + i] + r * ghn);
                h1[i] = (S(1) - z) * n + z * h[i];
                a[i] = r;
                a[WB + i] = z;
                a[2 * WB + i] = n;
                a[3 * WB + i] = ghn;
            }
        } else {  // LSTM
            S *a = p.acts + t * 5 * WB;  // i, f, g, o, tanh(c)
            const S *c = p.cs + t * WB;
            S *c1 = p.cs + (t + 1) * WB;
#pragma omp simd
            for (int64_t i = 0; i < WB; ++i) {
                const S ig = vsigmoid(gh[i]);
                const S fg = vsigmoid(gh[WB + i]);
                const S gg = vtanh(gh[2 * WB + i]);
                const S og = vsigmoid(gh[3 * WB + i]);
                const S cn = fg * c[i] + ig * gg;
                const S tc = vtanh(cn);
                c1[i] = cn;
                h1[i] = og * tc;
                a[i] = ig;
                a[WB + i] = fg;
                a[2 * WB + i] = gg;
                a[3 * WB + i] = og;
                a[4 * WB + i] = tc;
            }
        }
        if (L.block_io) add_block_states(L, h1, t);
    }
}

// Whether a row's two bias gradients are one sum: the pre-activation gradients on the input
// and the recurrent side differ only in GRU's n rows (the last W), so only those sum twice.
inline bool same_bias_grads(const Layer &L, int64_t row) {
    return L.family != GRU || row < 2 * L.width;
}

// One step's weight and bias gradients, added to the partial sums: dx is the pre-activation
// gradient on the input side, dr on the recurrent side (they differ only in GRU's n rows).
template <typename S, int G>
void add_weight_grads(const Layer &L, const S *x, const S *h, const S *dx, const S *dr,
                      Partials<S> &part) {
    constexpr int64_t V = lanes<S>();
    constexpr int N = 4;  // i2h entries of one row handled together
    const int64_t B = L.batch, W = L.width;
    for (int64_t row = 0; row < G * W; ++row) {
        const S *d = dx + row * B;
        int64_t k = L.row_ptr[row];
        for (; k + N <= L.row_ptr[row + 1]; k += N) {  // w_ih[row, c] for N columns c
            S *parts[N];
            const S *xs[N];
            for (int m = 0; m < N; ++m) {
                parts[m] = &part.ih[(k + m) * V];
                xs[m] = x + L.cols[k + m] * B;
            }
            dots<S, N>(parts, xs, d, B);
        }
        for (; k < L.row_ptr[row + 1]; ++k) {
            S *p1 = &part.ih[k * V];
            const S *x1 = x + L.cols[k] * B;
            dots<S, 1>(&p1, &x1, d, B);
        }
        sums(&part.b_ih[row * V], d, B);
        if (!same_bias_grads(L, row)) sums(&part.b_hh[row * V], dr + row * B, B);
    }
    S *hh = part.hh.data();  // entries (g, u, v) of each block, in that order
    for (int64_t j = 0; j < L.n_blocks; ++j) {
        const int64_t off = L.offsets[j], size = L.sizes[j];
        for (int64_t u = 0; u < size; ++u) {
            for (int64_t v = 0; v < size; ++v) {  // w_hh[(g, u), v] for the G gates at once
                S *parts[G];
                const S *ds[G];
                for (int g = 0; g < G; ++g) {
                    parts[g] = hh + ((g * size + u) * size + v) * V;
                    ds[g] = dr + (g * W + off + u) * B;
                }
                dots<S, G>(parts, ds, h + (off + v) * B, B);
            }
        }
        hh += G * size * size * V;
    }
}

// The partial sums reduced into the gradient buffers (entries outside the wiring untouched).
template <typename S, int G> void finish(const Layer &L, const Bufs<S> &p, Partials<S> &part) {
    constexpr int64_t V = lanes<S>();
    const int64_t W = L.width, I = L.in_size;
    for (int64_t row = 0; row < G * W; ++row) {
        for (int64_t k = L.row_ptr[row]; k < L.row_ptr[row + 1]; ++k)
            p.d_w_ih[row * I + L.cols[k]] = Partials<S>::total(&part.ih[k * V]);
        if (p.d_b_ih) p.d_b_ih[row] = Partials<S>::total(&part.b_ih[row * V]);
        const S *hh_part = same_bias_grads(L, row) ? &part.b_ih[row * V] : &part.b_hh[row * V];
        if (p.d_b_hh) p.d_b_hh[row] = Partials<S>::total(hh_part);
    }
    const S *hh = part.hh.data();
    for (int64_t j = 0; j < L.n_blocks; ++j) {
        const int64_t off = L.offsets[j], size = L.sizes[j];
        for (int g = 0; g < G; ++g)
            for (int64_t u = off; u < off + size; ++u)
                for (int64_t v = off; v < off + size; ++v, hh += V)
                    p.d_w_hh[(g * W + u) * W + v] = Partials<S>::total(hh);
    }
}

// Backward through time, one pass: each step's pre-activation gradients, the state gradient
// carried to the step before (W_hh^T dr), the input gradient d_x[t] = w_ih^T dx (by column,
// CSC), and the weight gradients' partial sums.
template <typename S, int G> void backward(const Layer &L) {
    constexpr int64_t CH = chunk<S>();
    const Bufs<S> p(L);
    const int64_t B = L.batch, W = L.width, WB = W * B, IB = L.in_size * B;
    int64_t hh_entries = 0;
    for (int64_t j = 0; j < L.n_blocks; ++j) hh_entries += G * L.sizes[j] * L.sizes[j];
    Partials<S> part(L, hh_entries);
    const Buf<S> wt = packed(p.w_ih, L.col_ptr, L.rows, L.in_size, 1, L.in_size);
    Buf<S> dh_buf(WB, S(0)), prev_buf(WB), dc_buf(WB, S(0));
    Buf<S> dx_buf(G * WB), dr_buf(L.family == GRU ? G * WB : 0);
    Buf<S> go_buf(L.block_io ? WB : 0);
    S *dh = dh_buf.data(), *dh_prev = prev_buf.data(), *dc = dc_buf.data();
    S *dx = dx_buf.data(), *dr = L.family == GRU ? dr_buf.data() : dx;
    for (int64_t t = L.steps - 1; t >= 0; --t) {
        if (L.block_io) gather_block_grads(L, go_buf.data(), t);
        const S *go = L.block_io ? go_buf.data() : p.g_out + t * WB;
        const S *h = p.hs + t * WB;  // the state this step read
        const S *h1 = p.hs + (t + 1) * WB;
        if (L.family == ELMAN_TANH || L.family == ELMAN_RELU) {
            const bool relu = L.family == ELMAN_RELU;
#pragma omp simd
            for (int64_t i = 0; i < WB; ++i) {
                const S d = dh[i] + go[i];
                const S grad = relu ? (h1[i] > S(0) ? S(1) : S(0)) : S(1) - h1[i] * h1[i];
                dx[i] = d * grad;
                dh_prev[i] = S(0);
            }
        } else if (L.family == GRU) {
            const S *a = p.acts + t * 4 * WB;
#pragma omp simd
            for (int64_t i = 0; i < WB; ++i) {
                const S d = dh[i] + go[i];
                const S r = a[i], z = a[WB + i], n = a[2 * WB + i], ghn = a[3 * WB + i];
                const S dn = d * (S(1) - z) * (S(1) - n * n);  // d pre-activation of n
                const S drr = dn * ghn * r * (S(1) - r);
                const S dz = d * (h[i] - n) * z * (S(1) - z);
                dx[i] = drr;
                dx[WB + i] = dz;
                dx[2 * WB + i] = dn;
                dr[i] = drr;
                dr[WB + i] = dz;
                dr[2 * WB + i] = dn * r;
                dh_prev[i] = d * z;
            }
        } else {  // LSTM
            const S *a = p.acts + t * 5 * WB;
            const S *c = p.cs + t * WB;
#pragma omp simd
            for (int64_t i = 0; i < WB; ++i) {
                const S d = dh[i] + go[i];
                const S ig = a[i], fg = a[WB + i], gg = a[2 * WB + i], og = a[3 * WB + i];
                const S tc = a[4 * WB + i];
                const S dcn = dc[i] + d * og * (S(1) - tc * tc);
                dx[i] = dcn * gg * ig * (S(1) - ig);
                dx[WB + i] = dcn * c[i] * fg * (S(1) - fg);
                dx[2 * WB + i] = dcn * ig * (S(1) - gg * gg);
                dx[3 * WB + i] = d * tc * og * (S(1) - og);
                dc[i] = dcn * fg;
                dh_prev[i] = S(0);
            }
        }
        recurrent_product_t<S, G>(L, p.w_hh, dr, dh_prev);
        for (int64_t c = 0; p.d_x && c < L.in_size; ++c) {
            SRNN_CHUNKS(B, CH, (compressed_chunk<S, Full>(L.col_ptr, L.rows, wt.data(), S(0), dx,
                                                          p.d_x + t * IB, c, B, c0, n,
                                                          L.add_d_x)))
        }
        add_weight_grads<S, G>(L, p.x + t * IB, h, dx, dr, part);
        S *swap = dh;
        dh = dh_prev;
        dh_prev = swap;
    }
    finish<S, G>(L, p, part);
}

template <typename S> void run(const Layer &L, bool fwd) {
    switch (L.gates) {
    case 1: return fwd ? forward<S, 1>(L) : backward<S, 1>(L);
    case 3: return fwd ? forward<S, 3>(L) : backward<S, 3>(L);
    default: return fwd ? forward<S, 4>(L) : backward<S, 4>(L);
    }
}

// A structure network's whole layer schedule (sparsernn.nn.structured): wide layer k reads
// layer source[k]'s output (the network's input where source[k] < 0) and its sub-layers
// (block_ptr[k] .. block_ptr[k+1], its Layer's diagonal blocks in order) write their units'
// states into layer block_dest's output, where they are added to the other sub-layers'. Wide layers come in source order, so every layer's output is complete before
// a wide layer reads it, and backward, in reverse order, has every output's gradient complete
// before the sub-layers that wrote it need it. One call runs what took ~20 torch calls per
// wide layer from Python (the layer calls, splits, sums and their backward); the sums and
// the gathers of the gradients run inside each layer's time loop (block_io), step by step.
struct Net {
    int64_t n_wide, n_layers, steps, batch, in_size;
    Layer *layers;                 // the wide layers; x, block_io and d_x are set here
    const int64_t *source, *block_ptr, *block_dest, *sizes;
    const void *x;                 // (T, in_size, B) the network's input
    void *const *outs;             // per layer (T, sizes[l], B): forward's results
    const void *const *g_outs;     // per layer: their gradients (null: zero)
    void *d_x;                     // (T, in_size, B) the input's gradient (null: not wanted)
};

template <typename S> const S *net_input(const Net &N, int64_t k) {
    return (const S *)(N.source[k] < 0 ? N.x : N.outs[N.source[k]]);
}

// Each wide layer's block_io: its blocks' destination layers' outputs (forward) or their
// gradients (backward), in block order.
template <typename P> std::vector<void *> block_io(const Net &N, int64_t k, P &&of_layer) {
    std::vector<void *> io;
    for (int64_t j = N.block_ptr[k]; j < N.block_ptr[k + 1]; ++j)
        io.push_back(of_layer(N.block_dest[j]));
    return io;
}

template <typename S> void net_forward(const Net &N) {
    const int64_t T = N.steps, B = N.batch;
    for (int64_t l = 0; l < N.n_layers; ++l)
        std::memset(N.outs[l], 0, T * N.sizes[l] * B * sizeof(S));
    for (int64_t k = 0; k < N.n_wide; ++k) {
        Layer &L = N.layers[k];
        if (L.width == 0) continue;
        const std::vector<void *> io = block_io(N, k, [&](int64_t l) { return N.outs[l]; });
        L.x = net_input<S>(N, k);
        L.block_io = io.data();
        run<S>(L, true);
        L.block_io = nullptr;  // the vector dies here
    }
}

template <typename S> void net_backward(const Net &N) {
    const int64_t T = N.steps, B = N.batch;
    std::vector<Buf<S>> grad(N.n_layers);  // each layer output's whole gradient
    for (int64_t l = 0; l < N.n_layers; ++l) {
        const S *g = (const S *)N.g_outs[l];
        grad[l] = g ? Buf<S>(g, g + T * N.sizes[l] * B)
                    : Buf<S>(T * N.sizes[l] * B, S(0));
    }
    for (int64_t k = N.n_wide - 1; k >= 0; --k) {
        Layer &L = N.layers[k];
        if (L.width == 0) continue;
        const std::vector<void *> io = block_io(N, k, [&](int64_t l) { return grad[l].data(); });
        const int64_t src = N.source[k];
        L.x = net_input<S>(N, k);
        L.block_io = io.data();
        L.d_x = src < 0 ? N.d_x : grad[src].data();  // the input's (null: not wanted) ...
        L.add_d_x = src >= 0;  // ... or added to what the layers read after it sent back
        run<S>(L, false);
        L.block_io = nullptr;
    }
}

}  // namespace

extern "C" {

// The ABI version: sparsernn.nn.native refuses a library whose version differs.
int srnn_version() { return 11; }

// sizeof(Layer): checked against the Python declaration when the library loads.
int64_t srnn_layer_size() { return sizeof(Layer); }

void srnn_forward_f32(const Layer *L) { run<float>(*L, true); }
void srnn_forward_f64(const Layer *L) { run<double>(*L, true); }
void srnn_backward_f32(const Layer *L) { run<float>(*L, false); }
void srnn_backward_f64(const Layer *L) { run<double>(*L, false); }

// sizeof(Net), checked like srnn_layer_size.
int64_t srnn_net_size() { return sizeof(Net); }

void srnn_net_forward_f32(const Net *N) { net_forward<float>(*N); }
void srnn_net_forward_f64(const Net *N) { net_forward<double>(*N); }
void srnn_net_backward_f32(const Net *N) { net_backward<float>(*N); }
void srnn_net_backward_f64(const Net *N) { net_backward<double>(*N); }

}  // extern "C"
