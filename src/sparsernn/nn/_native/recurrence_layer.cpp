// One wide layer's time loop, forward and backward (recurrence.cpp includes this file: one
// translation unit), run within a layer schedule (Net): each step's states are added into
// their blocks' destination layers' outputs, and backward gathers those outputs' gradients.

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
// layers' output gradients.
template <typename S> void gather_block_grads(const Layer &L, S *go, int64_t t) {
    for (int64_t j = 0; j < L.n_blocks; ++j) {
        const int64_t n = L.sizes[j] * L.batch;
        std::memcpy(go + L.offsets[j] * L.batch, (const S *)L.block_io[j] + t * n, n * sizeof(S));
    }
}

// Step t's gate math from its pre-activations gh (a GRU's input product apart, in xg): the
// new states hs[t+1] (an LSTM's cell states cs[t+1]) and the activations backward reads.
template <typename S>
inline __attribute__((always_inline)) void gates_forward(const Layer &L, const Bufs<S> &p,
                                                         int64_t t, const S *xg, const S *gh) {
    const int64_t WB = L.width * L.batch;
    const S *h = p.hs + t * WB;
    S *h1 = p.hs + (t + 1) * WB;
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
        const S *x = p.x + t * L.in_size * B;
        if (fold) {
            recurrent_product<S, G>(L, p.w_hh, bias.data(), h, gh, Fold<S>{wx.data(), x});
        } else {
            input_product(L, wx.data(), p.b_ih, x, xg);
            recurrent_product<S, G>(L, p.w_hh, bias.data(), h, gh);
        }
        gates_forward(L, p, t, xg, gh);
        add_block_states(L, p.hs + (t + 1) * WB, t);
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
    Buf<S> go_buf(WB);
    S *dh = dh_buf.data(), *dh_prev = prev_buf.data(), *dc = dc_buf.data();
    S *dx = dx_buf.data(), *dr = L.family == GRU ? dr_buf.data() : dx;
    for (int64_t t = L.steps - 1; t >= 0; --t) {
        gather_block_grads(L, go_buf.data(), t);
        const S *go = go_buf.data();
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
