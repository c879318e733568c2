"""The ops of the IR, by name: one constant per op of the rule table, and the leaf ops.

An `Op` is a string (`Op.EXP == "exp"`), so nodes print and hash as their names do.
"""

from enum import StrEnum


class Op(StrEnum):
    # leaves: values a statement reads (inputs, constants, symbolic sizes), adjoint variables, calls of
    # SymPy functions outside the table (their function is the node's attribute)
    INPUT = "input"
    CONST = "const"
    DIM = "dim"
    ADJ = "adj"
    CALL = "call"
    TANGENT = "tangent"  # a tangent variable of forward mode
    # the rule table's ops (bpgen/rules/table.py), in its order
    ADD = "add"
    SUB = "sub"
    NEG = "neg"
    MUL = "mul"
    DIV = "div"
    POW = "pow"
    SQRT = "sqrt"
    EXP = "exp"
    LOG = "log"
    SIN = "sin"
    COS = "cos"
    TAN = "tan"
    ASIN = "asin"
    ACOS = "acos"
    ATAN = "atan"
    ATAN2 = "atan2"
    SINH = "sinh"
    COSH = "cosh"
    TANH = "tanh"
    ERF = "erf"
    LGAMMA = "lgamma"
    GAMMA = "gamma"
    DIGAMMA = "digamma"
    POLYGAMMA = "polygamma"
    BETA = "beta"
    ABS = "abs"
    MAX = "max"
    MIN = "min"
    RELU = "relu"
    SIGMOID = "sigmoid"
    SOFTPLUS = "softplus"
    SELECT = "select"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    EQ = "eq"
    NE = "ne"
    AND = "and"
    OR = "or"
    NOT = "not"
    MATMUL = "matmul"
    FLAT_TRANSPOSE_MATMUL = "flat_transpose_matmul"  # sum over batch axes of a[i].T @ g[i]: a weight's gradient
    AFFINE = "affine"  # x @ W + b for a stack x, a matrix W and a bias row b, fused (bpgen/transforms/fuse.py)
    OUTER = "outer"
    # convolutions and pooling, PyTorch's NCHW layouts; attrs (stride, padding, dilation) pairs and groups
    CONV2D = "conv2d"  # cross-correlation of x (N, C, H, W) with w (F, C // groups, KH, KW)
    CONV2D_BACKWARD_INPUT = "conv2d_backward_input"  # its gradient in x, from (dy, w); attrs start with (H, W)
    CONV2D_BACKWARD_WEIGHT = "conv2d_backward_weight"  # its gradient in w, from (x, dy); attrs start with (KH, KW)
    MAX_POOL2D = "max_pool2d"  # attrs (kernel, stride, padding) pairs
    MAX_POOL2D_BACKWARD = "max_pool2d_backward"  # its gate: (x, dy) -> dy at each window's first largest entry
    MAX_POOL2D_AT = "max_pool2d_at"  # its tangent: (x, t) -> t at each window's first largest entry
    AVG_POOL2D = "avg_pool2d"  # the padding counted
    AVG_POOL2D_BACKWARD = "avg_pool2d_backward"  # its gradient (and tangent, linear): attrs start with (H, W)
    SUM_CHANNELS = "sum_channels"  # (N, C, ...) summed over every axis but C: a convolution bias's gradient
    TRANSPOSE = "transpose"
    PERMUTE = "permute"
    SLICE_AXIS = "slice_axis"
    STRIDE_AXIS = "stride_axis"  # every step-th entry of one axis, x[::2] or x[::-1] (a view)
    SPREAD_AXIS = "spread_axis"  # its gradient: zeros holding each entry of g at its place, step apart
    ELEMENT = "element"
    AT_INDEX = "at_index"
    EMBED_AXIS = "embed_axis"
    CONCAT = "concat"
    TAKE_ROWS = "take_rows"  # table[ids]: rows picked by an integer array (an embedding lookup)
    ADD_ROWS = "add_rows"  # its gradient: zeros of the table's shape, each upstream row added at its id
    RESHAPE = "reshape"
    SUM = "sum"
    MAX_ALL = "max_all"
    ROUTE_MAX_ALL = "route_max_all"
    MAX_LAST = "max_last"
    ROUTE_MAX_LAST = "route_max_last"
    MAX_ALONG = "max_along"
    ROUTE_MAX = "route_max"
    AT_MAX_ALL = "at_max_all"  # forward mode's max gate: the tangent at the largest entry
    AT_MAX_LAST = "at_max_last"
    AT_MAX = "at_max"
    FILL = "fill"
    BROADCAST_TO = "broadcast_to"
    SOFTMAX_CE = "softmax_ce"
    CROSS_ENTROPY = "cross_entropy"
    ONE_HOT = "one_hot"
    SOFTMAX = "softmax"
    SOFTMAX_JVP = "softmax_jvp"  # a softmax's tangent, s * (t - rowsum(s * t)), in one pass over the rows
    LOG_SOFTMAX = "log_softmax"
    LOGSUMEXP = "logsumexp"
    NORMALIZE = "normalize"  # each row (the last axis) less its mean, over its standard deviation (eps added)
    NORMALIZE_VJP = "normalize_vjp"  # its gradient (and tangent: the Jacobian is symmetric) in one pass per row
    # each channel of (N, C, H, W) less its mean over N, H and W, over its standard deviation (batch norm's core)
    NORMALIZE_CHANNELS = "normalize_channels"
    NORMALIZE_CHANNELS_VJP = "normalize_channels_vjp"  # its gradient and tangent, one pass per channel
    # loops (bpgen/ir/loops.py): a scan and its gradient are tuple-valued; a part is one of their results
    SCAN = "scan"
    SCAN_BACKWARD = "scan_backward"
    PART = "part"
