// A structure network's layer schedule (sparsernn.nn.structured) in one call each way: its
// wide layers' time loops, forward and backward, and the sums of their sub-layers' outputs.
//
// A wide layer of a random-structure network stacks the sub-layers that read one source
// layer: W units in all, split into diagonal blocks (offset, size). Its hidden-to-hidden
// matrix (G*W, W) is block-diagonal, so a gate row of one block only reads its own block's
// units, and its input-to-hidden matrix (G*W, I) is masked by the graph's edges. Run step by
// step from Python, each of the T steps costs ~20 small torch calls; here the whole schedule
// is one call, both products touch only the entries the masks keep (the i2h mask as a CSR
// row list, the h2h as its blocks), and every loop runs over the batch, the innermost
// (contiguous) dimension of every sequence buffer. Per wide layer (struct Layer):
//
//   x       (T, I, B)    the layer's input sequence (its source layer's output)
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
//
// One translation unit: this file includes its parts (recurrence_math.cpp, _products, _layer)
// and layout.cpp; sparsernn.nn._build assembles them into one text, which keys the build.
// The ABI version is typed once, in Python (sparsernn.nn.native.ABI_VERSION), and given to
// the compiler as -DSRNN_ABI=<n>.

#ifndef SRNN_ABI
#error "build with -DSRNN_ABI=<n>, the ABI version of sparsernn.nn.native (python -m sparsernn.nn.native builds it so)"
#endif

#include "layout.cpp"

#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

namespace {

enum Family { ELMAN_TANH = 0, ELMAN_RELU = 1, GRU = 2, LSTM = 3 };

// One wide layer and its buffers; the same struct (sparsernn.nn.native.LayerArgs) on both
// sides, checked field by field when the library loads (LAYOUTS below).
struct Layer {
    int64_t family, steps, batch, width, gates, in_size, n_blocks;
    const int64_t *offsets, *sizes;   // diagonal blocks of w_hh
    const int64_t *row_ptr, *cols;    // w_ih's kept entries by row (CSR) ...
    const int64_t *col_ptr, *rows;    // ... and by column (CSC)
    const void *x, *w_ih, *b_ih, *w_hh, *b_hh;  // inputs
    void *hs, *cs, *acts;                       // forward results (saved for backward)
    void *d_x, *d_w_ih, *d_b_ih, *d_w_hh, *d_b_hh;  // backward results (overwritten)
    // Per block (set by the schedule, Net below): its destination layer's (T, size, B) output,
    // which forward adds the block's states into step by step, and in backward that output's
    // gradient, from which the block's states' gradient is read.
    void *const *block_io;
    int64_t add_d_x;  // backward adds the input gradient into d_x instead of overwriting it
};

template <typename S> struct Bufs {  // the Layer's pointers, typed
    const S *x, *w_ih, *b_ih, *w_hh, *b_hh;
    S *hs, *cs, *acts, *d_x, *d_w_ih, *d_b_ih, *d_w_hh, *d_b_hh;
    explicit Bufs(const Layer &L)
        : x((const S *)L.x), w_ih((const S *)L.w_ih), b_ih((const S *)L.b_ih),
          w_hh((const S *)L.w_hh), b_hh((const S *)L.b_hh),
          hs((S *)L.hs), cs((S *)L.cs), acts((S *)L.acts), d_x((S *)L.d_x),
          d_w_ih((S *)L.d_w_ih), d_b_ih((S *)L.d_b_ih), d_w_hh((S *)L.d_w_hh),
          d_b_hh((S *)L.d_b_hh) {}
};

#include "recurrence_math.cpp"
#include "recurrence_products.cpp"
#include "recurrence_layer.cpp"

// A structure network's whole layer schedule (sparsernn.nn.structured): wide layer k reads
// layer source[k]'s output (the network's input where source[k] < 0) and its sub-layers
// (block_ptr[k] .. block_ptr[k+1], its Layer's diagonal blocks in order) write their units'
// states into layer block_dest's output, where they are added to the other sub-layers'. Wide
// layers come in source order, so every layer's output is complete before a wide layer reads it, and backward, in reverse order, has every output's gradient complete
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

// The structs shared with Python, field by field (exported by srnn_layout / srnn_field).
const layout::Field LAYER_FIELDS[] = {
    LAYOUT_FIELD(Layer, family),   LAYOUT_FIELD(Layer, steps),    LAYOUT_FIELD(Layer, batch),
    LAYOUT_FIELD(Layer, width),    LAYOUT_FIELD(Layer, gates),    LAYOUT_FIELD(Layer, in_size),
    LAYOUT_FIELD(Layer, n_blocks), LAYOUT_FIELD(Layer, offsets),  LAYOUT_FIELD(Layer, sizes),
    LAYOUT_FIELD(Layer, row_ptr),  LAYOUT_FIELD(Layer, cols),     LAYOUT_FIELD(Layer, col_ptr),
    LAYOUT_FIELD(Layer, rows),     LAYOUT_FIELD(Layer, x),        LAYOUT_FIELD(Layer, w_ih),
    LAYOUT_FIELD(Layer, b_ih),     LAYOUT_FIELD(Layer, w_hh),     LAYOUT_FIELD(Layer, b_hh),
    LAYOUT_FIELD(Layer, hs),       LAYOUT_FIELD(Layer, cs),       LAYOUT_FIELD(Layer, acts),
    LAYOUT_FIELD(Layer, d_x),      LAYOUT_FIELD(Layer, d_w_ih),   LAYOUT_FIELD(Layer, d_b_ih),
    LAYOUT_FIELD(Layer, d_w_hh),   LAYOUT_FIELD(Layer, d_b_hh),   LAYOUT_FIELD(Layer, block_io),
    LAYOUT_FIELD(Layer, add_d_x),
};
const layout::Field NET_FIELDS[] = {
    LAYOUT_FIELD(Net, n_wide),     LAYOUT_FIELD(Net, n_layers),   LAYOUT_FIELD(Net, steps),
    LAYOUT_FIELD(Net, batch),      LAYOUT_FIELD(Net, in_size),    LAYOUT_FIELD(Net, layers),
    LAYOUT_FIELD(Net, source),     LAYOUT_FIELD(Net, block_ptr),  LAYOUT_FIELD(Net, block_dest),
    LAYOUT_FIELD(Net, sizes),      LAYOUT_FIELD(Net, x),          LAYOUT_FIELD(Net, outs),
    LAYOUT_FIELD(Net, g_outs),     LAYOUT_FIELD(Net, d_x),
};
const layout::Struct LAYOUTS[] = {
    layout::of<Layer>("Layer", LAYER_FIELDS),
    layout::of<Net>("Net", NET_FIELDS),
};

extern "C" {

// The ABI version: sparsernn.nn.native refuses a library whose version differs.
int srnn_version() { return SRNN_ABI; }

// The shared structs' layouts (see layout.cpp).
int64_t srnn_layout(const char *type, int64_t *out, int64_t n) { return layout::fill(LAYOUTS, type, out, n); }
const char *srnn_field(const char *type, int64_t i) { return layout::field(LAYOUTS, type, i); }

// The whole layer schedule, forward or backward, in float or double.
void srnn_net_forward_f32(const Net *N) { net_forward<float>(*N); }
void srnn_net_forward_f64(const Net *N) { net_forward<double>(*N); }
void srnn_net_backward_f32(const Net *N) { net_backward<float>(*N); }
void srnn_net_backward_f64(const Net *N) { net_backward<double>(*N); }

}  // extern "C"
