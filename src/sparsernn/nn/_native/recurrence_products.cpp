// The recurrence's products (recurrence.cpp includes this file: one translation unit): the
// masked input product (by CSR rows forward, by CSC columns backward), the block-diagonal
// recurrent product and its transpose, and the weight gradients' per-lane partial sums.

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
