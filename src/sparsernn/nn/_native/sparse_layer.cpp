// One direction of one unstructured-sparse recurrent layer (RNN-tanh/ReLU, GRU, LSTM): the whole
// time loop forward, and its hand-written backward, one call each, reading only the kept weights
// (driven by sparsernn.nn.sparse_kernel). A weight matrix comes as its kept entries by rows (CSR,
// the values' order) and by columns (perm: each column-order entry's CSR position) for the
// backward's transposed products. Sequences are feature-major, the batch innermost (the lanes,
// the vectorised dimension):
//
//   x      (I, T*B)    the layer's input, rows x_ld apart (a view of the previous layer's hs)
//   hs     (H, T+1, B) states: slot 0 holds h0, slot t+1 the state after step t (reversed:
//                      slot T holds h0, slot t the state after step t)
//   acts   (T, A, H*B) what backward reads per step: Elman h (A = 1); GRU r, z, n, W_hn h + b_hn,
//                      the old h (A = 5); LSTM i, f, g, o, tanh(c), the old c (A = 6)
//   g_out  (H, T, B), d_x (I, T*B): backward's output gradient in, input gradient out
//
// The input product of all steps is one product over T*B lanes before the loop; each step adds
// the recurrent product (a row of lanes per kept entry; at one lane a dot product of gathered
// states) and runs the gates on flat (H*B) blocks. Weight gradients are sampled products: a dot
// product over all T*B lanes per kept entry. Packed sequences: active[t] lanes (lengths sorted
// decreasingly) are updated at step t, the others keep their state (the final state is each
// sequence's own last one, either direction) and pass their gradients through. PyTorch's gate
// order and equations; no -ffast-math: results differ from PyTorch's by float rounding only.
//
// One translation unit with its included parts (sparse_products.cpp, layout.cpp), assembled
// by sparsernn.nn._build. The ABI version is typed once, in Python
// (sparsernn.nn.sparse_kernel.ABI_VERSION), and given to the compiler as -DSPL_ABI=<n>.

#ifndef SPL_ABI
#error "build with -DSPL_ABI=<n>, the ABI version of sparsernn.nn.sparse_kernel (python -m sparsernn.nn.sparse_kernel builds it so)"
#endif

#include "layout.cpp"
#include "sparse_products.cpp"

#define SPL_INLINE inline __attribute__((always_inline))

namespace {

enum Cell { TANH = 0, RELU = 1, GRU = 2, LSTM = 3 };

// ------------------------------------------------------------------------------ gate math
// exp(x) = 2^k e^r with k = round(x / ln 2) and |r| <= ln 2 / 2; e^r by its Taylor series (to
// r^7 in float, r^13 in double: truncation under 0.05 ulp), 2^k by writing the exponent bits.
template <typename S> struct ExpTerms;
template <> struct ExpTerms<float> {
    static constexpr float max_arg = 87.0f, inv_ln2 = 1.4426950408889634f;
    static constexpr float ln2_a = 0.693145751953125f, ln2_b = 1.428606820309417e-6f;
    static constexpr int32_t bias = 127, mantissa = 23, order = 7;
};
template <> struct ExpTerms<double> {
    static constexpr double max_arg = 708.0, inv_ln2 = 1.4426950408889634074;
    static constexpr double ln2_a = 0.693145751953125, ln2_b = 1.42860682030941723212e-6;
    static constexpr int64_t bias = 1023, mantissa = 52, order = 13;
};

template <typename S> SPL_INLINE Vof<S> vexp(Vof<S> x) {
    using E = ExpTerms<S>;
    using I = typename Lanes<S>::I;
    using V = Vof<S>;
    x = x > E::max_arg ? V{} + E::max_arg : x;
    x = x < -E::max_arg ? V{} - E::max_arg : x;
    const V t = x * E::inv_ln2;
    const I k = __builtin_convertvector(t + (t < S(0) ? V{} - S(0.5) : V{} + S(0.5)), I);
    const V kf = __builtin_convertvector(k, V);
    const V r = (x - kf * E::ln2_a) - kf * E::ln2_b;
    S coef[E::order + 1];  // 1/j!, by Horner's rule from the highest order down
    coef[0] = S(1);
    for (int j = 1; j <= E::order; ++j) coef[j] = coef[j - 1] / S(j);
    V p = V{} + coef[E::order];
    for (int j = E::order - 1; j >= 0; --j) p = p * r + coef[j];
    const I bits = (k + E::bias) << E::mantissa;
    return p * (V)bits;  // the exponent bits, read as a number
}

template <typename S> SPL_INLINE Vof<S> vsigmoid(Vof<S> x) { return S(1) / (S(1) + vexp<S>(-x)); }

// tanh: (1 - e) / (1 + e) with e = exp(-2|x|), the sign put back; near zero, where 1 - e
// cancels, the odd Taylor series to x^11 (truncation below 1e-10 relative at the switch).
template <typename S> SPL_INLINE Vof<S> vtanh(Vof<S> x) {
    using V = Vof<S>;
    constexpr S edge = sizeof(S) == 4 ? S(0.0625) : S(0.00390625);  // |x|^2 below: series
    const V a = x < S(0) ? -x : x;
    const V e = vexp<S>(S(-2) * a);
    V big = (S(1) - e) / (S(1) + e);
    big = x < S(0) ? -big : big;
    const V x2 = x * x;
    constexpr S c[5] = {-1382.0 / 155925.0, 62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0};
    V s = V{} + c[0];
    for (int j = 1; j < 5; ++j) s = s * x2 + c[j];
    const V small = x + x * x2 * s;
    return x2 < edge ? small : big;
}

template <typename S> SPL_INLINE Vof<S> vrelu(Vof<S> x) { return x < S(0) ? Vof<S>{} : x; }  // NaN stays

// The structs shared with Python (sparsernn.nn.sparse_kernel: PatternArgs, LayerArgs, and
// SlicedArgs for Sliced), checked field by field when the library loads (LAYOUTS below).
struct Pattern {  // a weight matrix's kept entries
    const i64 *row_ptr; const i32 *cols;                   // by rows (CSR): the values' order
    const i64 *col_ptr; const i32 *rows; const i64 *perm;  // by columns, CSR position of each
    Sliced by_rows, by_cols;  // for one-lane products (n_slices 0: not given, batch > 4)
};

struct SpLayer {  // sparsernn.nn.sparse_kernel.LayerArgs
    i64 cell, steps, batch, hidden, in_size, reverse, save;
    const i64 *active;  // lanes updated at each step (null: all)
    Pattern ih, hh;
    const void *ih_val, *hh_val, *b_ih, *b_hh;  // values in CSR order; biases (G*H) or null
    const void *x;
    i64 x_ld;
    const void *h0, *c0;  // (H, B) or null: zeros
    void *hs, *c_last, *acts;  // forward results: states, the last cell state, saved
    const void *g_out, *g_hn, *g_cn;  // backward inputs (g_hn, g_cn may be null)
    void *d_x, *d_ih_val, *d_hh_val, *d_b_ih, *d_b_hh, *d_h0, *d_c0;  // any may be null
};

inline i64 gates_of(i64 cell) { return cell == LSTM ? 4 : cell == GRU ? 3 : 1; }
inline i64 saved_of(i64 cell) { return cell == LSTM ? 6 : cell == GRU ? 5 : 1; }

template <typename S> struct Typed {  // the layer's pointers, typed, and its shapes
    const SpLayer &L;
    i64 T, B, H, I, G, A, HB;
    const S *x, *b_ih, *b_hh, *g_out;
    S *hs, *acts;
    Lines<S> ih_rows, hh_rows;
    explicit Typed(const SpLayer &l)
        : L(l), T(l.steps), B(l.batch), H(l.hidden), I(l.in_size), G(gates_of(l.cell)),
          A(saved_of(l.cell)), HB(H * B), x((const S *)l.x), b_ih((const S *)l.b_ih),
          b_hh((const S *)l.b_hh), g_out((const S *)l.g_out), hs((S *)l.hs), acts((S *)l.acts),
          ih_rows{l.ih.row_ptr, l.ih.cols, (const S *)l.ih_val},
          hh_rows{l.hh.row_ptr, l.hh.cols, (const S *)l.hh_val} {}
    i64 active(i64 t) const { return L.active ? L.active[t] : B; }
    i64 slot_new(i64 t) const { return L.reverse ? t : t + 1; }
    S *saved(i64 t) const { return acts + t * A * HB; }  // step t's A blocks of H*B values
};

// Reading and writing one vector of lanes at flat position q (m lanes; Whole: all W of them).
template <typename S, typename Whole> struct Io {
    i64 q, m;
    Vof<S> at(const S *p) const { return get(p + q, m, Whole{}); }
    void out(S *p, Vof<S> v) const { put(p + q, v, m, Whole{}); }
};

// f(io) for every vector of the active lanes' flat (H*B) positions: one span when all lanes
// are active, else each unit's first n lanes.
template <typename S, typename F> inline void each_active(const Typed<S> &d, i64 n, F &&f) {
    for (i64 j = 0; j < (n == d.B ? 1 : d.H); ++j)
        by_vectors<S>(n == d.B ? d.HB : n, [&](i64 b, i64 m, auto whole) {
            f(Io<S, decltype(whole)>{j * d.B + b, m});
        });
}

// The step's gates for the active lanes, every (H*B) block flat: `pre` holds the G blocks of
// pre-activations (GRU: r, z, and W_hn h without b_hn), `gin` GRU's input-side n block and
// `bhn` its b_hn spread over the lanes; h and c are the running states, updated in place;
// `keep` (A blocks) receives what backward reads: Elman h; GRU r, z, n, W_hn h + b_hn, the
// old h; LSTM i, f, g, o, tanh(c), the old c.
template <typename S, int CELL>
void gates_forward(const Typed<S> &d, const S *pre, const S *gin, const S *bhn, S *h, S *c,
                   S *keep, i64 n) {
    const i64 HB = d.HB;
    each_active(d, n, [&](const auto &io) {
        auto at = [&](const S *p) { return io.at(p); };
        auto out = [&](S *p, Vof<S> v) { io.out(p, v); };
        if constexpr (CELL == LSTM) {
            const Vof<S> i = vsigmoid<S>(at(pre)), f = vsigmoid<S>(at(pre + HB));
            const Vof<S> g = vtanh<S>(at(pre + 2 * HB)), o = vsigmoid<S>(at(pre + 3 * HB));
            const Vof<S> c_old = at(c), c_new = f * c_old + i * g, tc = vtanh<S>(c_new);
            out(c, c_new);
            out(h, o * tc);
            if (keep) {
                const Vof<S> all[6] = {i, f, g, o, tc, c_old};
                for (int a = 0; a < 6; ++a) out(keep + a * HB, all[a]);
            }
        } else if constexpr (CELL == GRU) {
            const Vof<S> r = vsigmoid<S>(at(pre)), z = vsigmoid<S>(at(pre + HB));
            const Vof<S> hn = at(pre + 2 * HB) + at(bhn), h_old = at(h);
            const Vof<S> nn = vtanh<S>(at(gin) + r * hn);
            out(h, nn + z * (h_old - nn));
            if (keep) {
                const Vof<S> all[5] = {r, z, nn, hn, h_old};
                for (int a = 0; a < 5; ++a) out(keep + a * HB, all[a]);
            }
        } else {
            const Vof<S> v = at(pre);
            const Vof<S> y = CELL == TANH ? vtanh<S>(v) : vrelu<S>(v);
            out(h, y);
            if (keep) out(keep, y);
        }
    });
}

// gi = W_ih x + the biases folded in (G*H rows of T*B lanes): all steps' input products.
template <typename S> void input_gates(const Typed<S> &d, S *gi) {
    const i64 lanes = d.T * d.B, rows = d.G * d.H;
    product<S>(d.ih_rows, 0, rows, d.x, d.L.x_ld, nullptr, 0, gi, lanes, lanes);
    for (i64 r = 0; r < rows; ++r) {
        S bias = d.b_ih ? d.b_ih[r] : S(0);
        if (d.b_hh && !(d.L.cell == GRU && r >= 2 * d.H)) bias += d.b_hh[r];  // b_hn: inside r*
        if (bias == S(0)) continue;
        S *row = gi + r * lanes;
        for (i64 l = 0; l < lanes; ++l) row[l] += bias;
    }
}

// A matrix's kept values in column order (perm: each column-order entry's CSR position).
template <typename S> inline Lines<S> by_columns(const Pattern &m, const void *val, i64 n_cols) {
    const i64 nnz = m.col_ptr[n_cols];
    S *out = static_cast<S *>(arena.take(nnz * sizeof(S)));
    for (i64 k = 0; k < nnz; ++k) out[k] = static_cast<const S *>(val)[m.perm[k]];
    return {m.col_ptr, m.rows, out};
}

template <typename S, int CELL> void forward_loop(const Typed<S> &d) {
    const SpLayer &L = d.L;
    const i64 T = d.T, B = d.B, H = d.H, HB = d.HB, G = d.G;
    S *gi = scratch<S>(G * H * T * B), *pre = scratch<S>(G * HB), *h = scratch<S>(HB);
    S *c = scratch<S>(HB), *gin = scratch<S>(HB), *bhn = scratch<S>(HB);
    input_gates(d, gi);
    for (i64 q = 0; q < HB; ++q) {  // the initial states; GRU's b_hn for every lane
        h[q] = L.h0 ? ((const S *)L.h0)[q] : S(0);
        c[q] = L.c0 ? ((const S *)L.c0)[q] : S(0);
        bhn[q] = CELL == GRU && d.b_hh ? d.b_hh[2 * H + q / B] : S(0);
    }
    const i64 ld = (T + 1) * B;  // the state sequence's row stride
    rows_copy(d.hs + (L.reverse ? T : 0) * B, ld, h, B, H, B);  // h0 in its slot
    const i64 direct = CELL == GRU ? 2 * H : G * H;  // rows whose pre-activation adds gi
    const bool few = L.hh.by_rows.n_slices > 0;  // a few lanes: gathered products, lane by lane
    const Slices<S> rows = few ? pack<S>(L.hh.by_rows, L.hh_val) : Slices<S>{};
    for (i64 s = 0; s < T; ++s) {
        const i64 t = L.reverse ? T - 1 - s : s, n = d.active(t);
        const S *gi_t = gi + t * B;
        if (few) {
            for (i64 b = 0; b < n; ++b) sliced_product(rows, h + b, pre + b, B);
            for (i64 r = 0; r < direct; ++r)
                for (i64 b = 0; b < n; ++b) pre[r * B + b] += gi_t[r * T * B + b];
        } else {
            product<S>(d.hh_rows, 0, direct, h, B, gi_t, T * B, pre, B, n);
            product<S>(d.hh_rows, direct, G * H, h, B, nullptr, 0, pre, B, n);
        }
        if (CELL == GRU) rows_copy(gin, B, gi_t + 2 * H * T * B, T * B, H, n);
        gates_forward<S, CELL>(d, pre, gin, bhn, h, c, L.save ? d.saved(t) : nullptr, n);
        rows_copy(d.hs + d.slot_new(t) * B, ld, h, B, H, B);  // inactive lanes too
    }
    if (L.c_last) std::memcpy(L.c_last, c, HB * sizeof(S));
}

// ------------------------------------------------------------------------------ backward
// The step's gate gradients for the active lanes, every (H*B) block flat (see gates_forward):
// into dg, the G blocks of W_hh h's rows' gradients (GRU's n block: of W_hn h + b_hn), and
// for GRU dn_in (the n gate's input-side gradient) and direct (dh's part that bypasses W_hh).
// dh and dc hold the gradients of the step's output state; dc becomes the old c's.
template <typename S, int CELL>
void gates_backward(const Typed<S> &d, const S *keep, const S *dh, S *dc, S *dg, S *dn_in,
                    S *direct, i64 n) {
    const i64 HB = d.HB;
    each_active(d, n, [&](const auto &io) {
        auto at = [&](const S *p) { return io.at(p); };
        auto out = [&](S *p, Vof<S> v) { io.out(p, v); };
        const Vof<S> g_h = at(dh);
        if constexpr (CELL == LSTM) {
            const Vof<S> i = at(keep), f = at(keep + HB), g = at(keep + 2 * HB);
            const Vof<S> o = at(keep + 3 * HB), tc = at(keep + 4 * HB);
            const Vof<S> g_c = at(dc) + g_h * o * (S(1) - tc * tc);
            out(dg, g_c * g * i * (S(1) - i));
            out(dg + HB, g_c * at(keep + 5 * HB) * f * (S(1) - f));
            out(dg + 2 * HB, g_c * i * (S(1) - g * g));
            out(dg + 3 * HB, g_h * tc * o * (S(1) - o));
            out(dc, g_c * f);
        } else if constexpr (CELL == GRU) {
            const Vof<S> r = at(keep), z = at(keep + HB), nn = at(keep + 2 * HB);
            const Vof<S> g_n = g_h * (S(1) - z) * (S(1) - nn * nn);  // n's pre-activation
            out(dg, g_n * at(keep + 3 * HB) * r * (S(1) - r));
            out(dg + HB, g_h * (at(keep + 4 * HB) - nn) * z * (S(1) - z));
            out(dg + 2 * HB, g_n * r);
            out(dn_in, g_n);
            out(direct, g_h * z);
        } else if constexpr (CELL == TANH) {
            const Vof<S> y = at(keep);
            out(dg, g_h * (S(1) - y * y));
        } else {
            out(dg, at(keep) > S(0) ? g_h : Vof<S>{});
        }
    });
}

// After the loop: input gradient, weight gradients (sampled products) and bias sums from the
// gate gradients of all steps, dgi (G*H rows of T*B lanes; GRU: the n rows hold the input-side
// gradient and dghn the recurrent side's).
template <typename S> void weight_grads(const Typed<S> &d, const S *dgi, const S *dghn) {
    const SpLayer &L = d.L;
    const i64 lanes = d.T * d.B, rows = d.G * d.H, H = d.H;
    auto gh_row = [&](i64 r) {
        return (L.cell == GRU && r >= 2 * H) ? dghn + (r - 2 * H) * lanes : dgi + r * lanes;
    };
    if (L.d_x)
        product<S>(by_columns<S>(L.ih, L.ih_val, d.I), 0, d.I, dgi, lanes, nullptr, 0,
                   (S *)L.d_x, lanes, lanes);
    auto gi_row = [&](i64 r) { return dgi + r * lanes; };
    if (L.d_ih_val)
        sampled<S>(L.ih.row_ptr, L.ih.cols, rows, gi_row, d.x, L.x_ld, lanes, (S *)L.d_ih_val);
    if (L.d_hh_val) {
        const S *h_old = d.hs + (L.reverse ? d.B : 0);  // slots of the states each step read
        sampled<S>(L.hh.row_ptr, L.hh.cols, rows, gh_row, h_old, (d.T + 1) * d.B, lanes,
                   (S *)L.d_hh_val);
    }
    for (i64 r = 0; r < rows; ++r) {
        if (L.d_b_ih) ((S *)L.d_b_ih)[r] = lane_sum(gi_row(r), lanes);
        if (L.d_b_hh) ((S *)L.d_b_hh)[r] = lane_sum(gh_row(r), lanes);
    }
}

template <typename S, int CELL> void backward_loop(const Typed<S> &d) {
    const SpLayer &L = d.L;
    const i64 T = d.T, B = d.B, H = d.H, HB = d.HB, G = d.G, lanes = T * B;
    const bool gaps = L.active != nullptr;  // lanes some steps skip: their gradients stay 0
    S *dgi = scratch<S>(G * H * lanes, gaps);
    S *dghn = scratch<S>(CELL == GRU ? H * lanes : 0, gaps);
    S *dg = scratch<S>(G * HB), *dn_in = scratch<S>(HB), *direct = scratch<S>(HB);
    S *dh = scratch<S>(HB), *dc = scratch<S>(HB), *g_t = scratch<S>(HB);
    for (i64 q = 0; q < HB; ++q) {
        dh[q] = L.g_hn ? ((const S *)L.g_hn)[q] : S(0);
        dc[q] = L.g_cn ? ((const S *)L.g_cn)[q] : S(0);
    }
    const Lines<S> hh_cols = by_columns<S>(L.hh, L.hh_val, H);  // for the transposed product
    const bool few = L.hh.by_cols.n_slices > 0;  // as in forward_loop
    const Slices<S> cols = few ? pack<S>(L.hh.by_cols, L.hh_val) : Slices<S>{};
    for (i64 s = 0; s < T; ++s) {
        const i64 t = L.reverse ? s : T - 1 - s, n = d.active(t);
        if (d.g_out) {
            rows_copy(g_t, B, d.g_out + t * B, T * B, H, B);
            for (i64 q = 0; q < HB; ++q) dh[q] += g_t[q];
        }
        gates_backward<S, CELL>(d, d.saved(t), dh, dc, dg, dn_in, direct, n);
        // keep the step's gate gradients for after the loop (GRU: n's two kinds apart)
        const i64 plain = CELL == GRU ? 2 * H : G * H;
        rows_copy(dgi + t * B, lanes, dg, B, plain, n);
        if (CELL == GRU) {
            rows_copy(dgi + 2 * H * lanes + t * B, lanes, dn_in, B, H, n);
            rows_copy(dghn + t * B, lanes, dg + 2 * H * B, B, H, n);
        }
        // dh of the step before: W_hh^T dg (+ GRU's direct part), active lanes only
        if (few) {
            for (i64 b = 0; b < n; ++b) sliced_product(cols, dg + b, dh + b, B);
            for (i64 j = 0; j < H && CELL == GRU; ++j)
                for (i64 b = 0; b < n; ++b) dh[j * B + b] += direct[j * B + b];
        } else {
            product<S>(hh_cols, 0, H, dg, B, CELL == GRU ? direct : nullptr, B, dh, B, n);
        }
    }
    if (L.d_h0) std::memcpy(L.d_h0, dh, HB * sizeof(S));
    if (L.d_c0) std::memcpy(L.d_c0, dc, HB * sizeof(S));
    weight_grads(d, dgi, dghn);
}

// The forward or the backward pass, compiled once per cell.
template <typename S> void run_pass(const SpLayer &L, bool backward) {
    const Typed<S> d(L);
    switch (L.cell) {
        case TANH: return backward ? backward_loop<S, TANH>(d) : forward_loop<S, TANH>(d);
        case RELU: return backward ? backward_loop<S, RELU>(d) : forward_loop<S, RELU>(d);
        case GRU: return backward ? backward_loop<S, GRU>(d) : forward_loop<S, GRU>(d);
        default: return backward ? backward_loop<S, LSTM>(d) : forward_loop<S, LSTM>(d);
    }
}

}  // namespace

// The structs shared with Python, field by field (exported by spl_layout / spl_field).
const layout::Field SLICED_FIELDS[] = {
    LAYOUT_FIELD(Sliced, n_slices), LAYOUT_FIELD(Sliced, order), LAYOUT_FIELD(Sliced, start),
    LAYOUT_FIELD(Sliced, index),    LAYOUT_FIELD(Sliced, pos),
};
const layout::Field PATTERN_FIELDS[] = {
    LAYOUT_FIELD(Pattern, row_ptr), LAYOUT_FIELD(Pattern, cols),    LAYOUT_FIELD(Pattern, col_ptr),
    LAYOUT_FIELD(Pattern, rows),    LAYOUT_FIELD(Pattern, perm),    LAYOUT_FIELD(Pattern, by_rows),
    LAYOUT_FIELD(Pattern, by_cols),
};
const layout::Field SP_LAYER_FIELDS[] = {
    LAYOUT_FIELD(SpLayer, cell),     LAYOUT_FIELD(SpLayer, steps),    LAYOUT_FIELD(SpLayer, batch),
    LAYOUT_FIELD(SpLayer, hidden),   LAYOUT_FIELD(SpLayer, in_size),  LAYOUT_FIELD(SpLayer, reverse),
    LAYOUT_FIELD(SpLayer, save),     LAYOUT_FIELD(SpLayer, active),   LAYOUT_FIELD(SpLayer, ih),
    LAYOUT_FIELD(SpLayer, hh),       LAYOUT_FIELD(SpLayer, ih_val),   LAYOUT_FIELD(SpLayer, hh_val),
    LAYOUT_FIELD(SpLayer, b_ih),     LAYOUT_FIELD(SpLayer, b_hh),     LAYOUT_FIELD(SpLayer, x),
    LAYOUT_FIELD(SpLayer, x_ld),     LAYOUT_FIELD(SpLayer, h0),       LAYOUT_FIELD(SpLayer, c0),
    LAYOUT_FIELD(SpLayer, hs),       LAYOUT_FIELD(SpLayer, c_last),   LAYOUT_FIELD(SpLayer, acts),
    LAYOUT_FIELD(SpLayer, g_out),    LAYOUT_FIELD(SpLayer, g_hn),     LAYOUT_FIELD(SpLayer, g_cn),
    LAYOUT_FIELD(SpLayer, d_x),      LAYOUT_FIELD(SpLayer, d_ih_val), LAYOUT_FIELD(SpLayer, d_hh_val),
    LAYOUT_FIELD(SpLayer, d_b_ih),   LAYOUT_FIELD(SpLayer, d_b_hh),   LAYOUT_FIELD(SpLayer, d_h0),
    LAYOUT_FIELD(SpLayer, d_c0),
};
const layout::Struct LAYOUTS[] = {
    layout::of<Sliced>("Sliced", SLICED_FIELDS),
    layout::of<Pattern>("Pattern", PATTERN_FIELDS),
    layout::of<SpLayer>("SpLayer", SP_LAYER_FIELDS),
};

extern "C" {

// The ABI version: sparsernn.nn.sparse_kernel refuses a library whose version differs.
int spl_version() { return SPL_ABI; }
// The shared structs' layouts (see layout.cpp).
int64_t spl_layout(const char *type, int64_t *out, int64_t n) { return layout::fill(LAYOUTS, type, out, n); }
const char *spl_field(const char *type, int64_t i) { return layout::field(LAYOUTS, type, i); }
// Forward (backward = 0) or backward of the layer, in double (f64 = 1) or float.
void spl_run(const SpLayer *L, int64_t backward, int64_t f64) {
    arena.reset();
    if (f64) run_pass<double>(*L, backward != 0);
    else run_pass<float>(*L, backward != 0);
}

}  // extern "C"
