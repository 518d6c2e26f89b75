#define _POSIX_C_SOURCE 200809L
/*
 * test_diag.c - every kind of user error nnc reports, as tables:
 *   - malformed programs through nnc_parse + nnc_sema, each with the exact
 *     first diagnostic line (file:line:col: error: message), the error
 *     count, and optionally another whole line that must appear (the note
 *     naming where an operand was defined, or the hint);
 *   - legal but suspicious programs and their exact warnings, which must
 *     leave the error count at 0;
 *   - a few whole outputs, to pin the caret and the order of notes;
 *   - the nnc command itself: exit statuses 0, 1 and 2, --color and
 *     NO_COLOR.
 * Cases are grouped by the phase that catches them: scanner, parser,
 * names, shapes, options, hyper-parameters, data sources, the loss, and
 * the statements a program needs.  A new message adds a row.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "ir.h"
#include "util.h"
#include "sh_harness.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define F "bad.nn"

/* A valid program, one statement per line; each case changes a line or two.
 *   1 model   2 input   3 label   4 network   5 loss   6 optimizer   7 train */
#define MODEL "model m\n"
#define INPUT "input x : f32[2]\n"
#define LABEL "label y : class(2)\n"
#define NET "logits = x |> dense(8) |> relu |> dense(2)\n"
#define LOSS "loss softmax_cross_entropy(logits, y)\n"
#define OPT "optimizer sgd(lr: 0.1)\n"
#define TRAIN "train { data: moons(count: 100) }\n"
#define HEAD MODEL INPUT LABEL
#define TAIL LOSS OPT TRAIN
/* An image model: input [1, 8, 8], line 4 is the network. */
#define IMG MODEL "input x : f32[1, 8, 8]\n" LABEL
#define IMGTAIL LOSS OPT "train { data: idx(\"i.gz\", \"l.gz\") }\n"
/* A block taking the units and an activation, lines 4-6. */
#define BLOCK_R "block r(x, units, act: relu) {\n  return x |> dense(units) |> act\n}\n"
/* A regression model: label f32[1]. */
#define REG MODEL INPUT "label y : f32[1]\n"

#define MINUS10 "----------"
#define MINUS100 MINUS10 MINUS10 MINUS10 MINUS10 MINUS10 MINUS10 MINUS10 MINUS10 MINUS10 MINUS10

typedef struct diag_case {
	const char *name;
	const char *src;
	int errors;        /* error count */
	const char *first; /* the first line of the output, exactly */
	const char *also;  /* another whole line of the output, or NULL */
} diag_case;

static const diag_case cases[] = {
	/* ---- the scanner ---- */
	{"unknown character", HEAD "logits = x |> dense(2) @ 2\n" TAIL, 1,
	 F ":4:24: error: unexpected character '@'",
	 "hint: the symbols of .nn are = : , ; ( ) [ ] { } + - * / |> == != < <= > >= && || ! and # for a comment"},
	{"'|' for '|>'", HEAD "logits = x | dense(2)\n" TAIL, 1, F ":4:12: error: unexpected character '|'",
	 "hint: the pipe operator is written '|>'"},
	{"malformed number", HEAD NET LOSS "optimizer sgd(lr: 0.1.2)\n" TRAIN, 1,
	 F ":6:19: error: malformed number '0.1.2'", NULL},
	{"exponent without digits", HEAD NET LOSS "optimizer sgd(lr: 1e)\n" TRAIN, 1,
	 F ":6:19: error: malformed number '1e'", "hint: an exponent needs digits, as in 1e-3"},
	{"unterminated string", HEAD NET TAIL "train { data: csv(\"a.csv, x: [0], y: [1]) }\n", 1,
	 F ":8:19: error: unterminated string: a newline before the closing '\"'", NULL},
	{"single quotes", HEAD NET LOSS OPT "train { data: csv('a.csv', x: [0], y: [1]) }\n", 1,
	 F ":7:19: error: strings are written in double quotes, not single quotes", NULL},
	{"bad escape", HEAD NET LOSS OPT "train { data: csv(\"a\\q.csv\", x: [0], y: [1]) }\n", 1,
	 F ":7:21: error: unknown escape sequence '\\q'", NULL},

	/* ---- the parser: recovery, one message per mistake ---- */
	{"missing ')': the next line shows it", HEAD "logits = x |> dense(2\n" TAIL, 1,
	 F ":5:1: error: unexpected keyword 'loss', expected ',' or ')'", F ":4:20: note: to match this '('"},
	{"missing operand", HEAD "logits = (x |> dense(2)) *\n" TAIL, 1,
	 F ":4:27: error: unexpected end of line, expected an expression", NULL},
	{"operator after a pipe", HEAD "logits = x |> dense(2) + 1\n" TAIL, 1,
	 F ":4:24: error: unexpected '+', expected end of line", NULL},
	{"'=' in the train block", HEAD NET LOSS OPT "train { data = moons() }\n", 1,
	 F ":7:14: error: a train setting is written 'data: value', with ':' not '='", NULL},
	{"keyword as a name", HEAD "loss = x |> dense(2)\n" TAIL, 1,
	 F ":4:6: error: unexpected '=', expected an expression",
	 "hint: 'loss' is a reserved keyword and cannot be used as a name"},
	{"misspelt keyword", HEAD NET "los softmax_cross_entropy(logits, y)\n" OPT TRAIN, 1,
	 F ":5:5: error: unexpected identifier 'softmax_cross_entropy', expected '='", "hint: did you mean 'loss'?"},
	{"three independent syntax errors", HEAD "a = )\nb = x |> \nc = (1 +)\n" TAIL, 3,
	 F ":4:5: error: unexpected ')', expected an expression", NULL},
	{"zero dimension", MODEL "input x : f32[2, 0]\n" LABEL NET TAIL, 1,
	 F ":2:18: error: the dimension must be a positive integer, not 0", NULL},
	{"one class", MODEL INPUT "label y : class(1)\n" NET TAIL, 1,
	 F ":3:11: error: class(1) needs at least 2 classes", NULL},
	{"two labels", HEAD "label z : class(3)\n" NET TAIL, 1, F ":4:1: error: only one 'label' is supported",
	 F ":3:7: note: the first one is here"},
	{"an expression nested too deeply", HEAD "logits = x |> dense(2)\nv = " MINUS100 MINUS100 MINUS100 "1\n" TAIL, 1,
	 F ":5:5: error: this expression is nested too deeply (more than 256 levels)", NULL},

	/* ---- names ---- */
	{"unknown name with a suggestion", HEAD "hidden = x |> dense(8)\nlogits = hiden |> dense(2)\n" TAIL, 1,
	 F ":5:10: error: unknown name 'hiden'", "hint: did you mean 'hidden'?"},
	{"unknown layer with a suggestion", HEAD "logits = x |> dense(8) |> rellu |> dense(2)\n" TAIL, 1,
	 F ":4:27: error: unknown layer or function 'rellu'", "hint: did you mean 'relu'?"},
	{"unknown layer, no close match: the list", HEAD "logits = x |> dense(8) |> frobnicate |> dense(2)\n" TAIL, 1,
	 F ":4:27: error: unknown layer or function 'frobnicate'",
	 "hint: layers and activations are: dense, conv2d, maxpool, avgpool, global_avgpool, flatten, batchnorm, relu, sigmoid, "
	 "tanh, leaky_relu, elu, softplus, silu, gelu, softmax, dropout, concat, embedding, positional, layernorm, rmsnorm, "
	 "matmul, split_heads, merge_heads, attention, lstm, gru"},
	{"name used before it is defined", HEAD "logits = h |> dense(2)\nh = x |> dense(8)\n" TAIL, 1,
	 F ":4:10: error: unknown name 'h'", NULL},
	{"a value used in its own definition", HEAD "logits = logits |> dense(2)\n" TAIL, 1,
	 F ":4:10: error: 'logits' is used in its own definition",
	 "hint: a value cannot use itself; to extend 'logits', give the result a new name: 'logits2 = logits |> ...'"},
	{"... also deep inside it", HEAD "h = x |> dense(2)\nlogits = h + (x |> dense(2, name: \"a\") |> relu) * logits\n" TAIL,
	 1, F ":5:51: error: 'logits' is used in its own definition", NULL},
	{"name defined twice", HEAD "h = x |> dense(8)\nh = x |> dense(4)\nlogits = h |> dense(2)\n" TAIL, 1,
	 F ":5:1: error: 'h' is already defined", F ":4:1: note: 'h' was first defined here"},
	{"a layer used as a value", HEAD "logits = relu\n" TAIL, 1,
	 F ":4:10: error: 'relu' is a layer; apply it to a value, e.g. x |> relu", NULL},
	{"a loss used as a layer", HEAD "logits = x |> mse(y)\n" TAIL, 1,
	 F ":4:15: error: 'mse' is a loss; use it in a 'loss' statement", NULL},
	{"a data source used as a layer", HEAD "logits = moons(count: 3)\n" TAIL, 1,
	 F ":4:10: error: 'moons' is a data source; use it in the 'train' block", NULL},
	{"the label inside the network", HEAD "logits = y |> dense(2)\n" TAIL, 1,
	 F ":4:10: error: the label 'y' can only be the target of the loss",
	 "hint: the prediction must not depend on the label: it is not known when the model predicts"},
	{"the label as the output", HEAD NET "output y\n" TAIL, 1,
	 F ":5:8: error: the label 'y' can only be the target of the loss", NULL},
	{"a number where a tensor belongs", HEAD "logits = 3 * 4\n" TAIL, 1,
	 F ":4:10: error: 'logits' must be a tensor, not a number", NULL},
	{"a follow-on error is not reported", HEAD "h = x |> dense(8) |> rellu\nlogits = h |> dense(2)\n" TAIL, 1,
	 F ":4:22: error: unknown layer or function 'rellu'", NULL},

	/* ---- shapes: the op, both shapes, where each operand was defined ---- */
	{"add of [n, 8] and [n, 4]", HEAD "a = x |> dense(8)\nb = x |> dense(4)\nlogits = (a + b) |> dense(2)\n" TAIL,
	 1, F ":6:11: error: 'add' needs operands of the same shape, but got [n, 8] and [n, 4]",
	 F ":5:5: note: right operand b has shape [n, 4]"},
	{"mul of the input and a layer", HEAD "a = x |> dense(3)\nlogits = (x * a) |> dense(2)\n" TAIL, 1,
	 F ":5:11: error: 'mul' needs operands of the same shape, but got [n, 2] and [n, 3]",
	 F ":2:7: note: left operand x has shape [n, 2]"},
	{"logits do not match class(N)", HEAD "logits = x |> dense(3)\n" TAIL, 1,
	 F ":5:6: error: 'softmax_cross_entropy' needs 2 logits per sample to match label class(2), but got shape "
	   "[n, 3]",
	 F ":3:7: note: label y is class(2)"},
	{"mse of different sizes", REG "p = x |> dense(3)\nloss mse(p, y)\n" OPT
	 "train { data: csv(\"d.csv\", x: [0, 1], y: [2]) }\n", 1,
	 F ":5:6: error: 'mse' needs the prediction and the target to have the same size, but got [n, 3] and [n, 1]",
	 F ":4:5: note: prediction p has shape [n, 3]"},
	{"conv2d kernel larger than its input", IMG "logits = x |> conv2d(4, 9) |> flatten |> dense(2)\n" IMGTAIL, 1,
	 F ":4:10: error: conv2d kernel 9x9 is larger than its input 1x8x8 padded by 0x0",
	 F ":2:7: note: the input has shape [n, 1, 8, 8]"},
	{"maxpool window larger than its input", IMG "logits = x |> maxpool(16) |> flatten |> dense(2)\n" IMGTAIL, 1,
	 F ":4:10: error: maxpool window 16x16 is larger than its input 1x8x8",
	 F ":2:7: note: the input has shape [n, 1, 8, 8]"},
	{"avgpool after a conv that shrank the image", IMG "c = x |> conv2d(2, 5)\nlogits = c |> avgpool(5) |> dense(2)\n"
	 IMGTAIL, 1, F ":5:10: error: avgpool window 5x5 is larger than its input 2x4x4", NULL},
	{"conv2d of a vector", HEAD "logits = x |> conv2d(2, 1) |> dense(2)\n" TAIL, 1,
	 F ":4:10: error: 'conv2d' needs an image input of shape [C, H, W], but its input has shape [n, 2]",
	 F ":2:7: note: the input x is defined here"},
	{"global_avgpool of a vector", HEAD "logits = x |> dense(4) |> global_avgpool |> dense(2)\n" TAIL, 1,
	 F ":4:10: error: 'global_avgpool' needs an image input of shape [C, H, W], but its input has shape [n, 4]",
	 NULL},
	{"batchnorm of a matrix", MODEL "input x : f32[2, 3]\n" LABEL "logits = x |> batchnorm |> dense(2)\n" LOSS OPT
	 "train { data: idx(\"i.gz\", \"l.gz\") }\n", 1,
	 F ":4:10: error: 'batchnorm' needs a vector of features [F] or an image [C, H, W], but its input has shape [n, 2, 3]",
	 F ":2:7: note: the input x is defined here"},
	{"batchnorm momentum above 1", HEAD "logits = x |> dense(4) |> batchnorm(momentum: 1.5) |> dense(2)\n" TAIL, 1,
	 F ":4:47: error: 'momentum' of batchnorm must be between 0 and 1, not 1.5", NULL},
	{"batchnorm momentum and eps negative", HEAD "logits = x |> dense(4) |> batchnorm(eps: -1e-5, momentum: -0.1) |> dense(2)\n" TAIL, 2,
	 F ":4:59: error: 'momentum' of batchnorm must be between 0 and 1, not -0.1",
	 F ":4:42: error: 'eps' of batchnorm must be positive, not -1e-05"},
	{"batchnorm eps zero", HEAD "logits = x |> dense(4) |> batchnorm(eps: 0) |> dense(2)\n" TAIL, 1,
	 F ":4:42: error: 'eps' of batchnorm must be positive, not 0", NULL},
	{"batchnorm affine not a truth value", HEAD "logits = x |> dense(4) |> batchnorm(affine: 1) |> dense(2)\n" TAIL, 1,
	 F ":4:45: error: 'affine' of batchnorm must be true or false", NULL},
	{"batchnorm as a shared layer", HEAD "layer bn = batchnorm()\nlogits = x |> dense(2) |> bn\n" TAIL, 1,
	 F ":5:10: error: 'batchnorm' cannot be a shared layer: its running statistics belong to one place",
	 "hint: write a batchnorm at each place (the layers before it may be shared)"},
	{"batchnorm unknown option", HEAD "logits = x |> dense(4) |> batchnorm(mom: 0.1) |> dense(2)\n" TAIL, 1,
	 F ":4:37: error: 'batchnorm' has no option 'mom'", "hint: the options of 'batchnorm' are: momentum, eps, affine, name"},
	{"a layer too large to exist", HEAD "logits = x |> dense(100000) |> dense(100000) |> dense(2)\n" TAIL, 1,
	 F ":4:10: error: the weight of this layer would have shape [100000, 100000], 1e+10 values; at most "
	   "2147483648 per tensor are supported",
	 NULL},
	{"an input too large to exist", MODEL "input x : f32[100000, 100000]\n" LABEL NET TAIL, 1,
	 F ":2:11: error: the input would have shape [100000, 100000], 1e+10 values; at most 2147483648 per tensor "
	   "are supported",
	 NULL},
	{"tensor divided by a tensor", HEAD "a = x |> dense(2)\nlogits = a / a\n" TAIL, 1,
	 F ":5:10: error: dividing a tensor by a tensor is not supported; divide by a number", NULL},

	/* ---- options ---- */
	{"misspelt option", HEAD "logits = x |> dense(2, bais: false)\n" TAIL, 1,
	 F ":4:24: error: 'dense' has no option 'bais'", "hint: did you mean 'bias'?"},
	{"unknown option: the valid ones", HEAD "logits = x |> dense(2, activation: relu)\n" TAIL, 1,
	 F ":4:24: error: 'dense' has no option 'activation'",
	 "hint: the options of 'dense' are: units, init, bias_init, bias, name"},
	{"an option of a layer that has none", HEAD "logits = x |> dense(2) |> relu(alpha: 0.1)\n" TAIL, 1,
	 F ":4:32: error: 'relu' has no option 'alpha'", "hint: 'relu' takes no options"},
	{"duplicate option", HEAD NET LOSS "optimizer sgd(lr: 0.1, lr: 0.2)\n" TRAIN, 1,
	 F ":6:24: error: option 'lr' is given twice", F ":6:15: note: first given here"},
	{"an option given three times: one error per repeat", HEAD NET LOSS "optimizer sgd(lr: 0.1, lr: 0.2, lr: 0.3)\n"
	 TRAIN, 2, F ":6:24: error: option 'lr' is given twice", F ":6:33: error: option 'lr' is given twice"},
	{"units given twice", HEAD "logits = x |> dense(2, units: 3)\n" TAIL, 1,
	 F ":4:24: error: the number of units is given twice", NULL},
	{"too many arguments", HEAD "logits = x |> dense(2, 3)\n" TAIL, 1,
	 F ":4:24: error: too many arguments to 'dense' (it takes 2 plus named options)", NULL},
	{"unknown initialiser: the valid ones", HEAD "logits = x |> dense(2, init: kaiming)\n" TAIL, 1,
	 F ":4:30: error: unknown initialiser 'kaiming'",
	 "hint: initialisers are: glorot, xavier, he, lecun, zeros, normal, uniform, constant"},
	{"initialiser without its argument", HEAD "logits = x |> dense(2, init: normal)\n" TAIL, 1,
	 F ":4:30: error: initialiser 'normal' takes one number, e.g. normal(0.01)", NULL},
	{"bias that is not a boolean", HEAD "logits = x |> dense(2, bias: 1)\n" TAIL, 1,
	 F ":4:30: error: 'bias' must be true or false", NULL},
	{"unknown padding", IMG "logits = x |> conv2d(2, 3, pad: valid) |> flatten |> dense(2)\n" IMGTAIL, 1,
	 F ":4:33: error: unknown padding 'valid'", "hint: no padding is pad: 0"},
	{"pad: same with an even kernel", IMG "logits = x |> conv2d(2, 4, pad: same) |> flatten |> dense(2)\n" IMGTAIL,
	 1, F ":4:33: error: pad: same needs stride 1 and an odd kernel, but the kernel is 4x4 with stride 1x1", NULL},
	{"kernel given as a name", IMG "logits = x |> conv2d(2, big) |> flatten |> dense(2)\n" IMGTAIL, 1,
	 F ":4:25: error: the kernel size must be a number or a list of two numbers [height, width], not 'big'", NULL},
	{"unknown optimizer", HEAD NET LOSS "optimizer rmsprob(lr: 0.1)\n" TRAIN, 1,
	 F ":6:11: error: unknown optimizer 'rmsprob'", "hint: did you mean 'rmsprop'?"},
	{"an adam option on sgd", HEAD NET LOSS "optimizer sgd(lr: 0.1, beta1: 0.9)\n" TRAIN, 1,
	 F ":6:24: error: 'sgd' has no option 'beta1'",
	 "hint: the options of 'sgd' are: lr, momentum, dampening, nesterov, weight_decay, decay_biases, clip_norm, "
	 "clip_value"},
	{"an sgd option on rmsprop", HEAD NET LOSS "optimizer rmsprop(nesterov: true)\n" TRAIN, 1,
	 F ":6:19: error: 'rmsprop' has no option 'nesterov'", NULL},
	{"unknown train setting", HEAD NET LOSS OPT "train { data: moons(count: 100), epoch: 3 }\n", 1,
	 F ":7:34: error: unknown train setting 'epoch'", "hint: did you mean 'epochs'?"},
	{"duplicate train setting", HEAD NET LOSS OPT "train { data: moons(count: 100), batch: 8, batch: 16 }\n", 1,
	 F ":7:44: error: train setting 'batch' is given twice", F ":7:34: note: first given here"},
	{"unknown precision", HEAD NET LOSS OPT "train { data: moons(count: 100), precision: bf61 }\n", 1,
	 F ":7:45: error: 'precision' is fp32 or bf16", "hint: did you mean 'bf16'?"},

	/* ---- hyper-parameters ---- */
	{"negative learning rate", HEAD NET LOSS "optimizer sgd(lr: -0.1)\n" TRAIN, 1,
	 F ":6:19: error: the learning rate must be positive, not -0.1", NULL},
	{"learning rate 0", HEAD NET LOSS "optimizer adam(lr: 0)\n" TRAIN, 1,
	 F ":6:20: error: the learning rate must be positive, not 0", NULL},
	{"learning rate below float range", HEAD NET LOSS "optimizer sgd(lr: 1e-50)\n" TRAIN, 1,
	 F ":6:19: error: 'lr' is too small: 1e-50 is 0 as a 32-bit float", NULL},
	{"learning rate above float range", HEAD NET LOSS "optimizer sgd(lr: 1e39)\n" TRAIN, 1,
	 F ":6:19: error: 'lr' is too large: 1e+39 is beyond the range of a 32-bit float (about 3.4e38)", NULL},
	{"momentum of 1", HEAD NET LOSS "optimizer sgd(lr: 0.1, momentum: 1)\n" TRAIN, 1,
	 F ":6:34: error: momentum must be in [0, 1), not 1", NULL},
	{"beta2 above 1", HEAD NET LOSS "optimizer adam(beta2: 1.5)\n" TRAIN, 1,
	 F ":6:23: error: beta2 must be in [0, 1), not 1.5", NULL},
	{"eps of 0", HEAD NET LOSS "optimizer adam(eps: 0)\n" TRAIN, 1, F ":6:21: error: eps must be positive, not 0",
	 NULL},
	{"negative weight decay", HEAD NET LOSS "optimizer adamw(weight_decay: -0.01)\n" TRAIN, 1,
	 F ":6:31: error: weight_decay must be non-negative, not -0.01", NULL},
	{"alpha of 1", HEAD NET LOSS "optimizer rmsprop(alpha: 1)\n" TRAIN, 1,
	 F ":6:26: error: alpha must be in [0, 1), not 1", NULL},
	{"dampening above 1", HEAD NET LOSS "optimizer sgd(momentum: 0.9, dampening: 2)\n" TRAIN, 1,
	 F ":6:41: error: dampening must be in [0, 1], not 2", NULL},
	{"nesterov without momentum", HEAD NET LOSS "optimizer sgd(lr: 0.1, nesterov: true)\n" TRAIN, 1,
	 F ":6:34: error: Nesterov momentum needs a momentum and no dampening",
	 "hint: give a momentum, e.g. sgd(lr: 0.1, momentum: 0.9, nesterov: true)"},
	{"nesterov with dampening", HEAD NET LOSS "optimizer sgd(momentum: 0.9, dampening: 0.1, nesterov: true)\n" TRAIN,
	 1, F ":6:56: error: Nesterov momentum needs a momentum and no dampening", NULL},
	{"clip_norm of 0", HEAD NET LOSS "optimizer sgd(clip_norm: 0)\n" TRAIN, 1,
	 F ":6:26: error: clip_norm must be positive, not 0", NULL},
	{"negative clip_value", HEAD NET LOSS "optimizer adam(clip_value: -1)\n" TRAIN, 1,
	 F ":6:28: error: clip_value must be positive, not -1", NULL},
	{"amsgrad that is not a boolean", HEAD NET LOSS "optimizer adam(amsgrad: 1)\n" TRAIN, 1,
	 F ":6:25: error: 'amsgrad' must be true or false", NULL},
	{"batch 0", HEAD NET LOSS OPT "train { data: moons(count: 100), batch: 0 }\n", 1,
	 F ":7:41: error: the batch size must be a whole number >= 1, not 0", NULL},
	{"batch too large", HEAD NET LOSS OPT "train { data: moons(count: 100), batch: 100000 }\n", 1,
	 F ":7:41: error: the batch size must be at most 65536", NULL},
	{"fractional epochs", HEAD NET LOSS OPT "train { data: moons(count: 100), epochs: 2.5 }\n", 1,
	 F ":7:42: error: the number of epochs must be a whole number >= 1, not 2.5", NULL},
	{"negative seed", HEAD NET LOSS OPT "train { data: moons(count: 100), seed: -1 }\n", 1,
	 F ":7:40: error: the seed must be a whole number >= 0, not -1", NULL},
	{"seed too large", HEAD NET LOSS OPT "train { data: moons(count: 100), seed: 1e300 }\n", 1,
	 F ":7:40: error: the seed must be at most 1000000000000000, not 1e+300", NULL},
	{"arithmetic that overflows", HEAD NET LOSS "optimizer sgd(lr: 1e300 * 1e300)\n" TRAIN, 1,
	 F ":6:19: error: the value of this expression is too large (it overflows)", NULL},
	{"division by zero", HEAD "logits = (x |> dense(2)) / (1 - 1)\n" TAIL, 1, F ":4:29: error: division by zero",
	 NULL},
	{"negative std of an initialiser", HEAD "logits = x |> dense(2, init: normal(-1))\n" TAIL, 1,
	 F ":4:37: error: 'normal' needs a non-negative scale", NULL},
	{"two bad hyper-parameters, two errors", HEAD NET LOSS "optimizer sgd(lr: 0, momentum: -1)\n" TRAIN, 2,
	 F ":6:19: error: the learning rate must be positive, not 0", NULL},

	{"label smoothing of 1", HEAD NET "loss softmax_cross_entropy(logits, y, smoothing: 1)\n" OPT TRAIN, 1,
	 F ":5:50: error: 'smoothing' must be in [0, 1), not 1", NULL},
	{"label smoothing on mse", MODEL INPUT "label y : f32[1]\n" NET "loss mse(logits, y, smoothing: 0.1)\n" OPT TRAIN,
	 1, F ":5:21: error: 'mse' has no option 'smoothing'", "hint: 'mse' takes no options"},

	/* ---- learning-rate schedules ---- */
	{"unknown schedule", HEAD NET LOSS OPT "train { data: moons(count: 100), schedule: cosin(min: 0) }\n", 1,
	 F ":7:44: error: unknown schedule 'cosin'", "hint: did you mean 'cosine'?"},
	{"step schedule without its period", HEAD NET LOSS OPT "train { data: moons(count: 100), schedule: step(gamma: 0.5) }\n",
	 1, F ":7:44: error: schedule 'step' needs 'every' (epochs), e.g. step(every: 30, gamma: 0.1)", NULL},
	{"minimum rate above the rate", HEAD NET LOSS OPT "train { data: moons(count: 100), schedule: cosine(min: 0.5) }\n",
	 1, F ":7:56: error: the schedule's 'min' rate 0.5 is above the learning rate 0.1", NULL},
	{"warmup longer than the training", HEAD NET LOSS OPT "train { data: moons(count: 100), warmup: 10 }\n", 1,
	 F ":7:42: error: the warmup of 10 steps is not shorter than the training: 1 epoch of 4 steps", NULL},
	{"negative warmup", HEAD NET LOSS OPT "train { data: moons(count: 100), warmup: -1 }\n", 1,
	 F ":7:42: error: the warmup (steps) must be a whole number >= 0, not -1", NULL},
	{"restarts and one decay", HEAD NET LOSS OPT
	 "train { data: moons(count: 100), schedule: cosine(epochs: 5, period: 2) }\n", 1,
	 F ":7:62: error: 'period' (cosine with restarts) and 'epochs' (one decay) exclude each other", NULL},
	{"milestones out of order", HEAD NET LOSS OPT
	 "train { data: moons(count: 100), schedule: multistep(at: [5, 3]) }\n", 1,
	 F ":7:62: error: the milestones must be positive and increasing, not 3 after 5", NULL},
	{"onecycle's base momentum of 1", HEAD NET LOSS OPT
	 "train { data: moons(count: 100), schedule: onecycle(base_momentum: 1) }\n", 1,
	 F ":7:68: error: 'base_momentum' must be in (0, 1), not 1", NULL},
	{"onecycle's max momentum without cycling", HEAD NET LOSS OPT
	 "train { data: moons(count: 100), schedule: onecycle(max_momentum: 0.9, cycle_momentum: false) }\n", 1,
	 F ":7:53: error: 'max_momentum' has no effect with cycle_momentum: false", NULL},
	{"onecycle's unknown option", HEAD NET LOSS OPT
	 "train { data: moons(count: 100), schedule: onecycle(base_momentun: 0.8) }\n", 1,
	 F ":7:53: error: 'onecycle' has no option 'base_momentun'", "hint: did you mean 'base_momentum'?"},
	{"onecycle's pct above 1", HEAD NET LOSS OPT "train { data: moons(count: 100), schedule: onecycle(pct: 2) }\n", 1,
	 F ":7:58: error: 'pct' must be in (0, 1], not 2", NULL},

	{"accumulate of 0", HEAD NET LOSS OPT "train { data: moons(count: 100), accumulate: 0 }\n", 1,
	 F ":7:46: error: 'accumulate' (micro-batches per update) must be a whole number >= 1, not 0", NULL},
	{"accumulate with clip_norm", HEAD NET LOSS "optimizer sgd(clip_norm: 1)\n"
	 "train { data: moons(count: 100), accumulate: 4 }\n", 1,
	 F ":7:46: error: accumulate does not work with clip_norm yet (the norm of the accumulated gradient is not "
	   "computed)", NULL},

	/* ---- augmentation ---- */
#define AUGNET "logits = x |> flatten |> dense(2)\n" LOSS OPT
#define AUG(list) IMG AUGNET "train { data: idx(\"i.gz\", \"l.gz\"), augment: " list " }\n"
	{"augmentation of a vector input", HEAD NET LOSS OPT "train { data: moons(count: 100), augment: [flip] }\n", 1,
	 F ":7:43: error: augmentation needs an image input [channels, rows, columns], but the input is a vector",
	 F ":2:7: note: the input is declared here"},
	{"unknown transform", AUG("[flp]"), 1, F ":7:46: error: unknown transform 'flp'", "hint: did you mean 'flip'?"},
	{"crop without pad", AUG("[crop]"), 1,
	 F ":7:46: error: 'crop' needs the padding 'pad' (pixels per side), e.g. crop(pad: 4)", NULL},
	{"crop pad of 0", AUG("[crop(pad: 0)]"), 1,
	 F ":7:56: error: 'pad' of 'crop' must be a whole number from 1 to 1024, not 0", NULL},
	{"flip probability above 1", AUG("[flip(p: 1.5)]"), 1,
	 F ":7:54: error: the probability 'p' of 'flip' must be in (0, 1], not 1.5", NULL},
	{"erase size not whole", AUG("[erase(size: 2.5)]"), 1,
	 F ":7:58: error: 'size' of 'erase' must be a whole number from 1 to 65536, not 2.5", NULL},
	{"erase without size", AUG("[erase(p: 0.5)]"), 1,
	 F ":7:46: error: 'erase' needs the side 'size' of the square (pixels), e.g. erase(size: 8)", NULL},
	{"crop padding as large as the image", AUG("[crop(pad: 8)]"), 1,
	 F ":7:45: error: crop's padding of 8 pixels is not smaller than the image (8x8)", NULL},
	{"erase square larger than the image", AUG("[erase(size: 9)]"), 1,
	 F ":7:45: error: erase's square of 9 pixels is larger than the image (8x8)", NULL},
	{"augment not a list", AUG("flip"), 1,
	 F ":7:45: error: 'augment' must be a list of transforms, e.g. augment: [crop(pad: 4), flip]", NULL},
	{"transform given twice", AUG("[flip, flip]"), 1, F ":7:52: error: transform 'flip' is given twice", NULL},
	{"unknown option of erase", AUG("[erase(size: 2, q: 1)]"), 1, F ":7:61: error: 'erase' has no option 'q'",
	 "hint: did you mean 'p'?"},

	/* ---- validation and early stopping ---- */
	{"validation fraction of 1", HEAD NET LOSS OPT "train { data: moons(count: 100), validation: 1 }\n", 1,
	 F ":7:46: error: the validation fraction must be in (0, 1), not 1", NULL},
	{"early stopping without validation", HEAD NET LOSS OPT "train { data: moons(count: 100), early_stop: val_loss }\n",
	 1, F ":7:34: error: early stopping needs validation data",
	 "hint: hold out part of the training data, e.g. validation: 0.1, or give a validation set, e.g. "
	 "validation: idx(\"images\", \"labels\")"},
	/* validation: as a data source of its own, checked like data: and test: */
	{"validation set with other classes", HEAD NET LOSS OPT
	 "train { data: moons(count: 100),\n        validation: spiral(classes: 3) }\n", 1,
	 F ":8:21: error: spiral() has 3 classes, but label 'y' is class(2)", NULL},
	{"validation set of another feature count", MODEL "input x : f32[3]\n" LABEL NET LOSS OPT
	 "train { data: csv(\"d.csv\", x: [0, 1, 2], y: 3), validation: parity(bits: 4) }\n", 1,
	 F ":7:61: error: parity() gives 4 features per sample, but input 'x' has shape [n, 3]", NULL},
	{"unknown validation source", HEAD NET LOSS OPT "train { data: moons(count: 100), validation: moon(count: 10) }\n", 1,
	 F ":7:46: error: unknown data source 'moon'", "hint: did you mean 'moons'?"},
	{"validation fraction that is not a number", HEAD NET LOSS OPT "train { data: moons(count: 100), validation: \"v.csv\" }\n", 1,
	 F ":7:46: error: 'validation' must be a fraction such as 0.1 or a data source such as idx(\"images\", \"labels\")",
	 NULL},
	{"early stopping on an unknown metric",
	 HEAD NET LOSS OPT "train { data: moons(count: 100), validation: 0.1, early_stop: val_los }\n", 1,
	 F ":7:63: error: early stopping cannot watch 'val_los'", "hint: did you mean 'val_loss'?"},
	{"patience of 0",
	 HEAD NET LOSS OPT "train { data: moons(count: 100), validation: 0.1, early_stop: val_loss(patience: 0) }\n", 1,
	 F ":7:82: error: 'patience' (epochs) must be a whole number >= 1, not 0", NULL},
	{"negative min_delta",
	 HEAD NET LOSS OPT "train { data: moons(count: 100), validation: 0.1, early_stop: val_loss(min_delta: -1) }\n", 1,
	 F ":7:83: error: 'min_delta' must be >= 0, not -1", NULL},
	{"val_acc of a regression", REG "logits = x |> dense(8) |> relu |> dense(1)\nloss mse(logits, y)\n" OPT
	 "train { data: moons(count: 100), validation: 0.2, early_stop: val_acc }\n", 1,
	 F ":7:63: error: early stopping cannot watch val_acc: an mse loss has no accuracy", NULL},

	/* ---- data sources ---- */
	{"unknown data source", HEAD NET LOSS OPT "train { data: moon(count: 100) }\n", 1,
	 F ":7:15: error: unknown data source 'moon'", "hint: did you mean 'moons'?"},
	{"a string where a data source belongs", HEAD NET LOSS OPT "train { data: \"train.csv\" }\n", 1,
	 F ":7:15: error: 'data' must be a data source such as idx(\"images\", \"labels\") or moons(count: 1000)",
	 NULL},
	{"idx() with one path", HEAD NET LOSS OPT "train { data: idx(\"images.gz\") }\n", 1,
	 F ":7:15: error: idx() needs two paths: the image file and the label file", NULL},
	{"csv() without feature columns", HEAD NET LOSS OPT "train { data: csv(\"d.csv\", y: [2]) }\n", 1,
	 F ":7:15: error: csv() needs the feature columns, e.g. x: [\"x1\", \"x2\"]", NULL},
	{"csv() column with a comma", HEAD NET LOSS OPT "train { data: csv(\"d.csv\", x: [\"a,b\"], y: [2]) }\n", 1,
	 F ":7:32: error: a column name cannot contain ','", NULL},
	{"csv() column that is not a name or index", HEAD NET LOSS OPT "train { data: csv(\"d.csv\", x: [1.5], y: [2]) }\n",
	 1, F ":7:32: error: a CSV column is a name (string) or a 0-based index", NULL},
	{"moons for a 3-feature input", MODEL "input x : f32[3]\n" LABEL NET TAIL, 1,
	 F ":7:15: error: moons() gives 2 features per sample, but input 'x' has shape [n, 3]", NULL},
	{"spiral arms against the classes", HEAD NET LOSS OPT "train { data: spiral(classes: 3) }\n", 1,
	 F ":7:15: error: spiral() has 3 classes, but label 'y' is class(2)", NULL},
	{"classes on a set that has two", HEAD NET LOSS OPT "train { data: moons(classes: 3) }\n", 1,
	 F ":7:21: error: 'moons' has no option 'classes'", "hint: the options of 'moons' are: count, noise, seed"},
	{"parity with too many bits", MODEL "input x : f32[21]\n" LABEL NET LOSS OPT "train { data: parity(bits: 21) }\n",
	 1, F ":7:28: error: 'bits' must be at most 20", NULL},
	{"negative noise", HEAD NET LOSS OPT "train { data: moons(noise: -0.1) }\n", 1,
	 F ":7:28: error: 'noise' must be non-negative", NULL},
	{"count of 0", HEAD NET LOSS OPT "train { data: moons(count: 0) }\n", 1,
	 F ":7:28: error: 'count' must be a whole number >= 1, not 0", NULL},
	{"scale of 0", HEAD NET LOSS OPT "train { data: idx(\"i\", \"l\", scale: 0) }\n", 1,
	 F ":7:36: error: 'scale' must not be 0: every feature would be 0", NULL},
	{"test set for a different input", HEAD NET LOSS OPT "train { data: moons(), test: parity(bits: 3) }\n", 1,
	 F ":7:30: error: parity() gives 3 features per sample, but input 'x' has shape [n, 2]", NULL},
	{"no data in the train block", HEAD NET LOSS OPT "train { batch: 8 }\n", 1,
	 F ":7:1: error: the train block needs a 'data' source", "hint: for example: data: moons(count: 1000, noise: 0.1)"},
	{"misspelt data is one error", HEAD NET LOSS OPT "train { dta: moons() }\n", 1,
	 F ":7:9: error: unknown train setting 'dta'", "hint: did you mean 'data'?"},

	/* ---- the loss and its label ---- */
	{"unknown loss", HEAD NET "loss cross_entropy(logits, y)\n" OPT TRAIN, 1,
	 F ":5:6: error: unknown loss 'cross_entropy'", "hint: losses are: softmax_cross_entropy, mse, binary_cross_entropy"},
	{"mse with a class label", HEAD NET "loss mse(logits, y)\n" OPT TRAIN, 1,
	 F ":5:18: error: 'mse' needs a real-valued f32[...] label, but 'y' is class(N)",
	 "hint: declare it as: label y : f32[k], or use softmax_cross_entropy"},
	{"softmax_cross_entropy with a real label", REG "logits = x |> dense(2)\n" LOSS OPT
	 "train { data: csv(\"d.csv\", x: [0, 1], y: [2]) }\n", 1,
	 F ":5:36: error: 'softmax_cross_entropy' needs a class(N) label, but 'y' is a real-valued f32[...]",
	 "hint: declare it as: label y : class(N)"},
	{"the loss's target is not the label", HEAD NET "loss softmax_cross_entropy(logits, x)\n" OPT TRAIN, 1,
	 F ":5:36: error: the second argument of 'softmax_cross_entropy' must be the label", F ":3:7: note: the label is declared here"},
	{"a loss without its label", HEAD NET "loss softmax_cross_entropy(logits)\n" OPT TRAIN, 1,
	 F ":5:6: error: 'softmax_cross_entropy' needs the label as its second argument", NULL},
	{"a model without parameters", MODEL "input x : f32[1]\nlabel y : f32[1]\np = x * 2\nloss mse(p, y)\n" OPT
	 "train { data: csv(\"d.csv\", x: [0], y: [1]) }\n", 1,
	 F ":5:6: error: the model has no parameters to train", "hint: add a layer with weights, e.g. dense(10)"},

	/* ---- statements a program needs, once ---- */
	{"no model line", INPUT LABEL NET TAIL, 1, F ":1:1: error: the program has no 'model NAME' line",
	 "hint: start the file with, for example: model mlp"},
	{"no input and no loss: both reported", MODEL OPT TRAIN, 2,
	 F ":1:1: error: the program declares no input; add e.g. 'input x : f32[784]'",
	 F ":1:1: error: the program has no loss"},
	{"no loss", HEAD NET OPT TRAIN, 1, F ":1:1: error: the program has no loss",
	 "hint: add e.g. 'loss softmax_cross_entropy(logits, y)'"},
	{"no optimizer", HEAD NET LOSS TRAIN, 1, F ":1:1: error: the program has no optimizer", NULL},
	{"no train block", HEAD NET LOSS OPT, 1, F ":1:1: error: the program has no train block", NULL},
	{"no loss, no optimizer, and a bad layer: three errors", HEAD "logits = x |> dense(2) |> rellu\n" TRAIN, 3,
	 F ":4:27: error: unknown layer or function 'rellu'", F ":1:1: error: the program has no optimizer"},
	{"two losses", HEAD NET LOSS LOSS OPT TRAIN, 1, F ":6:1: error: the loss is already defined",
	 F ":5:1: note: first defined here"},
	{"two optimizers", HEAD NET LOSS OPT OPT TRAIN, 1, F ":7:1: error: the optimizer is already defined", NULL},
	{"two train blocks", HEAD NET LOSS OPT TRAIN TRAIN, 1, F ":8:1: error: the train block is already defined",
	 NULL},
	{"two inputs", HEAD "input z : f32[2]\n" NET TAIL, 1, F ":4:1: error: only one 'input' is supported", NULL},
	{"an input of class type", MODEL "input x : class(3)\n" LABEL NET TAIL, 1,
	 F ":2:11: error: an input must be a tensor type like f32[784], not class(...)", NULL},
	/* ---- blocks and shared layers (lines 4-6: block r) ---- */
	{"a block call missing an argument", HEAD BLOCK_R "logits = x |> r() |> dense(2)\n" TAIL, 1,
	 F ":7:10: error: block 'r' needs a value for its parameter 'units'",
	 "hint: 'r' is defined as r(x, units, act: relu)"},
	{"a block call with an unknown argument", HEAD BLOCK_R "logits = x |> r(8, unit: 3) |> dense(2)\n" TAIL, 1,
	 F ":7:20: error: block 'r' has no parameter 'unit'",
	 "hint: did you mean 'units'? ('r' is defined as r(x, units, act: relu))"},
	{"a block argument given twice", HEAD BLOCK_R "logits = x |> r(8, units: 3) |> dense(2)\n" TAIL, 1,
	 F ":7:20: error: parameter 'units' of block 'r' is given twice", F ":7:17: note: first given here"},
	{"too many block arguments: one error", HEAD BLOCK_R "logits = x |> r(8, 3, 4, 5) |> dense(2)\n" TAIL, 1,
	 F ":7:23: error: too many arguments to block 'r' (it takes 3)", NULL},
	{"a bad word argument: the error in the block, a note at the call",
	 HEAD BLOCK_R "logits = x |> r(8, act: rleu) |> dense(2)\n" TAIL, 1,
	 F ":5:31: error: unknown layer or function 'rleu'", F ":7:15: note: in block 'r' called here"},
	{"recursion through another block",
	 HEAD "block a(x) {\n  return x |> b\n}\nblock b(x) {\n  return x |> a\n}\nlogits = x |> a |> dense(2)\n" TAIL, 1,
	 F ":8:15: error: block 'a' is recursive: a -> b -> a",
	 "hint: blocks are expanded where they are called, so a block cannot call itself; repeat a part with 'repeat N { "
	 "... }'"},
	{"direct recursion", HEAD "block a(x) {\n  return x |> a |> relu\n}\nlogits = x |> a |> dense(2)\n" TAIL, 1,
	 F ":5:15: error: block 'a' is recursive: a -> a", NULL},
	{"a tensor in a condition",
	 HEAD "block a(x) {\n  h = x |> dense(3)\n  if h > 0 { h = h |> relu }\n  return h\n}\nlogits = x |> a |> dense(2)\n"
	 TAIL, 1,
	 F ":6:6: error: '>' is computed when the program is compiled: it needs two numbers, not a tensor and a number",
	 "hint: a condition can test a block's arguments, not the values of a tensor"},
	{"a block without return", HEAD "block a(x) {\n  h = x |> dense(3)\n}\nlogits = x |> a |> dense(2)\n" TAIL, 1,
	 F ":4:7: error: block 'a' ends without returning a value", F ":7:15: note: in block 'a' called here"},
	{"a block returning a number", HEAD "block a(x, n) {\n  return n\n}\nlogits = x |> a(3) |> dense(2)\n" TAIL, 1,
	 F ":5:10: error: a block returns a tensor, not a number", F ":7:15: note: in block 'a' called here"},
	{"a negative repeat count",
	 HEAD "block a(x, n) {\n  repeat n { x = x |> relu }\n  return x\n}\nlogits = x |> a(-1) |> dense(2)\n" TAIL, 1,
	 F ":5:10: error: the count of 'repeat' must be a whole number from 0 to 10000, not -1",
	 F ":8:15: note: in block 'a' called here"},
	{"a block named like a layer", HEAD "block dense(x) {\n  return x\n}\n" NET TAIL, 1,
	 F ":4:7: error: 'dense' is a built-in name; a block needs another", NULL},
	{"a parameter twice: the block's calls say nothing more",
	 HEAD "block a(x, x) {\n  return x\n}\nlogits = x |> a(1) |> dense(2)\n" TAIL, 1,
	 F ":4:12: error: parameter 'x' appears twice", NULL},
	{"'if' outside a block", HEAD NET "if 1 { h = x }\n" TAIL, 1,
	 F ":5:1: error: unexpected keyword 'if', expected a statement", "hint: 'if' is only allowed inside a block's body"},
	{"'else' on the line after the '}'",
	 HEAD "block a(x) {\n  if 1 { h = x }\n  else { h = x }\n  return h\n}\nlogits = x |> a |> dense(2)\n" TAIL, 1,
	 F ":6:3: error: unexpected keyword 'else'", "hint: 'else' follows the '}' of its 'if' on the same line: '} else {'"},
	{"a shared layer applied to inputs of different sizes",
	 HEAD "layer enc = dense(3)\nh = x |> enc\nlogits = (h |> enc) + (x |> enc) |> dense(2)\n" TAIL, 1,
	 F ":6:11: error: shared layer 'enc' is applied to inputs of different shapes: [n, 3] here, [n, 2] at its first "
	 "use",
	 F ":5:5: note: its first use, which made 'enc.weight' [2, 3]"},
	{"a shared conv2d on another number of channels",
	 IMG "layer c = conv2d(2, 3)\nh = x |> c\nlogits = (h |> c) |> flatten |> dense(2)\n" IMGTAIL, 1,
	 F ":6:11: error: shared layer 'c' is applied to inputs of different shapes: [n, 2, 6, 6] here, [n, 1, 8, 8] at "
	 "its first use",
	 F ":5:5: note: its first use, which made 'c.weight' [2, 1, 3, 3]"},
	{"a tensor in a block's list argument", HEAD BLOCK_R "logits = x |> r(2, act: [x]) |> dense(2)\n" TAIL, 1,
	 F ":7:26: error: a list holds numbers, strings or words, not a tensor", NULL},
	{"a shared layer given arguments where it is used", HEAD "layer enc = dense(3)\nlogits = x |> enc(2)\n" TAIL, 1,
	 F ":5:10: error: 'enc' is a shared layer: apply it to one value and nothing else, as in 'x |> enc'",
	 "hint: its options are given where it is defined"},
	{"a shared layer used as a value", HEAD "layer enc = dense(2)\nlogits = enc\n" TAIL, 1,
	 F ":5:10: error: 'enc' is a shared layer; apply it to a value, e.g. x |> enc", NULL},
	{"a shared layer with its input", HEAD "layer enc = x |> dense(2)\nlogits = x |> enc\n" TAIL, 1,
	 F ":4:13: error: a shared layer is a call of a built-in layer without its input, such as 'layer enc = "
	 "dense(64)'", NULL},
};


/* The training configuration of check()'s last graph. */
static nnc_train_config check_cfg;

/* Parses and checks `text` as file F; diagnostics into *out.  The graph, or
 * NULL. */
static ir_graph *check(const char *text, nnc_buf *out)
{
	nnc_source *src = nnc_alloc(sizeof *src);
	src->path = F;
	src->text = text;
	src->len = (long)strlen(text);
	nnc_diag_set_color(0);
	nnc_diag_reset();
	nnc_diag_capture(out);
	nnc_program *prog = nnc_parse(src);
	ir_graph *g = prog ? nnc_sema(prog, &check_cfg) : NULL;
	nnc_diag_capture(NULL);
	return g;
}

Test(diag, malformed_programs)
{
	cr_assert_geq(NELEMS(cases), 60);
	for (size_t i = 0; i < NELEMS(cases); i++) {
		const diag_case *c = &cases[i];
		nnc_buf b = {0};
		ir_graph *g = check(c->src, &b);
		const char *text = b.data ? b.data : "";
		char first[1024] = "";
		sh_nth_line(text, 0, first, sizeof first);
		cr_expect(!g, "[%s] the program compiled", c->name);
		cr_expect_str_eq(first, c->first, "[%s] first line\n  got:  %s\n  want: %s\nall:\n%s", c->name, first,
				 c->first, text);
		if (c->also)
			cr_expect(sh_has_line(text, c->also), "[%s] no line\n  %s\nin\n%s", c->name, c->also, text);
		cr_expect_eq(nnc_diag_error_count(), c->errors, "[%s] %d errors, want %d:\n%s", c->name,
			     nnc_diag_error_count(), c->errors, text);
		nnc_buf_free(&b);
	}
}

/* The valid base program compiles without a word. */
Test(diag, base_program_is_clean)
{
	nnc_buf b = {0};
	cr_assert(check(HEAD NET TAIL, &b), "%s", b.data);
	cr_expect_null(b.data, "%s", b.data);
	cr_expect_eq(nnc_diag_warning_count(), 0);
	nnc_buf_free(&b);
}

/* ---- warnings: legal programs that are almost certainly mistakes ---- */

typedef struct warn_case {
	const char *name;
	const char *src;
	int warnings;
	const char *first; /* the first line of the output, exactly */
	const char *also;
} warn_case;

static const warn_case warn_cases[] = {
	{"a value never used", HEAD "h = x |> dense(4)\n" NET TAIL, 1, F ":4:1: warning: 'h' is never used", NULL},
	{"a chain of values the loss does not need", HEAD "a = x |> dense(4)\nb = a |> relu\n" NET TAIL, 2,
	 F ":4:1: warning: 'a' is used, but neither the loss nor the output depends on it",
	 F ":5:1: warning: 'b' is never used"},
	{"an output is a use", HEAD "p = x |> dense(4)\noutput p\n" NET TAIL, 0, NULL, NULL},
	{"a shared layer never applied", HEAD "layer enc = dense(4)\n" NET TAIL, 1,
	 F ":4:7: warning: shared layer 'enc' is never applied", NULL},
	{"a block never called: no warning", HEAD BLOCK_R NET TAIL, 0, NULL, NULL},
	{"softmax before softmax_cross_entropy", HEAD "logits = x |> dense(2) |> softmax\n" TAIL, 1,
	 F ":4:10: warning: 'softmax_cross_entropy' applies softmax itself, but its input has already been through "
	   "softmax",
	 "hint: pass the logits, the values before softmax"},
	{"binary_cross_entropy of a value that is not a probability",
	 REG "p = x |> dense(1)\nloss binary_cross_entropy(p, y)\n" OPT "train { data: xor() }\n", 1,
	 F ":4:5: warning: 'binary_cross_entropy' needs probabilities in (0, 1), but its input is not the output of "
	   "sigmoid",
	 "hint: end the network with '|> sigmoid'"},
	{"csv() feature columns against the input", HEAD NET LOSS OPT "train { data: csv(\"d.csv\", x: [0], y: [2]) }\n",
	 1, F ":7:31: warning: csv() reads 1 feature column, but input 'x' has shape [n, 2]: 2 values per sample",
	 "hint: the training program will refuse this data"},
	{"csv() label columns against class(N)", HEAD NET LOSS OPT
	 "train { data: csv(\"d.csv\", x: [0, 1], y: [2, 3]) }\n", 1,
	 F ":7:42: warning: csv() reads 2 label columns, but label 'y' is class(2): one column, the class index",
	 F ":3:7: note: 'y' is declared here"},
};

Test(diag, warnings_do_not_fail_the_program)
{
	for (size_t i = 0; i < NELEMS(warn_cases); i++) {
		const warn_case *c = &warn_cases[i];
		nnc_buf b = {0};
		ir_graph *g = check(c->src, &b);
		const char *text = b.data ? b.data : "";
		cr_expect(g != NULL, "[%s] did not compile:\n%s", c->name, text);
		cr_expect_eq(nnc_diag_error_count(), 0, "[%s]", c->name);
		cr_expect_eq(nnc_diag_warning_count(), c->warnings, "[%s] %d warnings, want %d:\n%s", c->name,
			     nnc_diag_warning_count(), c->warnings, text);
		char first[1024] = "";
		sh_nth_line(text, 0, first, sizeof first);
		cr_expect_str_eq(first, c->first ? c->first : "", "[%s] first line\n  got:  %s\n  want: %s", c->name,
				 first, c->first ? c->first : "");
		if (c->also)
			cr_expect(sh_has_line(text, c->also), "[%s] no line\n  %s\nin\n%s", c->name, c->also, text);
		nnc_buf_free(&b);
	}
}

/* ---- whole outputs ---- */

Test(diag, shape_error_names_both_operands_with_carets)
{
	nnc_buf b = {0};
	cr_assert_null(check(HEAD "a = x |> dense(8)\nb = x |> dense(4)\nlogits = (a + b) |> dense(2)\n" TAIL, &b));
	cr_expect_str_eq(b.data, F ":6:11: error: 'add' needs operands of the same shape, but got [n, 8] and [n, 4]\n"
				 "    6 | logits = (a + b) |> dense(2)\n"
				 "      |           ^~~~~\n"
				 F ":4:5: note: left operand a has shape [n, 8]\n"
				 "    4 | a = x |> dense(8)\n"
				 "      |     ^~~~~~~~~~~~~\n"
				 F ":5:5: note: right operand b has shape [n, 4]\n"
				 "    5 | b = x |> dense(4)\n"
				 "      |     ^~~~~~~~~~~~~\n");
	nnc_buf_free(&b);
}

/* An error two blocks deep: the line in the inner block, then one note per
 * call, innermost first, after the error's own notes and hint. */
Test(diag, an_error_two_blocks_deep_names_both_calls)
{
	nnc_buf b = {0};
	cr_assert_null(check(HEAD "block inner(x, k) {\n  return x |> dense(k) |> relu\n}\n"
			      "block outer(x, k) {\n  h = x |> inner(k - 1)\n  return h\n}\n"
			      "logits = x |> outer(1) |> dense(2)\n" TAIL, &b));
	cr_expect_str_eq(b.data, F ":5:21: error: the number of units must be a whole number >= 1, not 0\n"
				 "    5 |   return x |> dense(k) |> relu\n"
				 "      |                     ^\n"
				 F ":8:12: note: in block 'inner' called here\n"
				 "    8 |   h = x |> inner(k - 1)\n"
				 "      |            ^~~~~~~~~~~~\n"
				 F ":11:15: note: in block 'outer' called here\n"
				 "   11 | logits = x |> outer(1) |> dense(2)\n"
				 "      |               ^~~~~~~~\n");
	nnc_buf_free(&b);
}

/* The notes of the calls come after the error's own notes and hint, and
 * each error inside a block gets them. */
Test(diag, notes_of_the_calls_follow_each_error)
{
	nnc_buf b = {0};
	cr_assert_null(check(HEAD "block a(x) {\n  h = x |> rellu\n  return h + (x |> dense(3))\n}\n"
			      "logits = x |> a |> dense(2)\n" TAIL, &b));
	cr_expect_str_eq(b.data, F ":5:12: error: unknown layer or function 'rellu'\n"
				 "    5 |   h = x |> rellu\n"
				 "      |            ^~~~~\n"
				 "hint: did you mean 'relu'?\n"
				 F ":8:15: note: in block 'a' called here\n"
				 "    8 | logits = x |> a |> dense(2)\n"
				 "      |               ^\n");
	nnc_buf_free(&b);
}

static int count_lines_with(const char *text, const char *part);

/* Hostile nestings end in one error each, with a bounded number of notes:
 * a chain of 100 blocks (nested more than 64 deep: the 8 innermost calls,
 * a count, the outermost), a cycle of 30 (its path shortened), a repeat
 * that would run 10^8 statements. */
Test(diag, deep_long_and_large_expansions_are_bounded)
{
	nnc_buf p = {0}, b = {0};
	nnc_buf_puts(&p, HEAD "block b0(x) {\n  return x |> relu\n}\n");
	for (int i = 1; i < 100; i++)
		nnc_buf_printf(&p, "block b%d(x) {\n  return x |> b%d\n}\n", i, i - 1);
	nnc_buf_puts(&p, "logits = x |> b99 |> dense(2)\n" TAIL);
	cr_assert_null(check(p.data, &b));
	cr_expect_eq(nnc_diag_error_count(), 1, "%s", b.data);
	cr_expect(sh_has_line(b.data, F ":113:10: error: blocks are nested more than 64 deep here"), "%s", b.data);
	cr_expect(sh_has_line(b.data, "      (55 more calls)"), "%s", b.data);
	cr_expect(sh_has_line(b.data, F ":304:15: note: in block 'b99' called here"), "%s", b.data);
	cr_expect_eq(count_lines_with(b.data, ": note: "), 9, "%s", b.data);
	nnc_buf_free(&b);
	nnc_buf_free(&p);

	p = (nnc_buf){0};
	b = (nnc_buf){0};
	nnc_buf_puts(&p, HEAD);
	for (int i = 0; i < 30; i++)
		nnc_buf_printf(&p, "block b%d(x) {\n  return x |> b%d\n}\n", i, (i + 1) % 30);
	nnc_buf_puts(&p, "logits = x |> b0 |> dense(2)\n" TAIL);
	cr_assert_null(check(p.data, &b));
	cr_expect_eq(nnc_diag_error_count(), 1, "%s", b.data);
	cr_expect(sh_has_line(b.data, F ":92:15: error: block 'b0' is recursive: b0 -> b1 -> b2 -> b3 -> b4 -> b5 -> b6 -> "
				  "b7 -> (21 more) -> b29 -> b0"), "%s", b.data);
	nnc_buf_free(&b);
	nnc_buf_free(&p);

	b = (nnc_buf){0};
	cr_assert_null(check(HEAD "block a(x) {\n  repeat 10000 { repeat 10000 { x = x |> relu } }\n  return x\n}\n"
			      "logits = x |> a |> dense(2)\n" TAIL, &b));
	cr_expect_eq(nnc_diag_error_count(), 1, "%s", b.data);
	cr_expect(sh_has_line(b.data, F ":5:33: error: the blocks expand to more than 1000000 statements"), "%s", b.data);
	nnc_buf_free(&b);
}

Test(diag, warning_layout)
{
	nnc_buf b = {0};
	cr_assert_not_null(check(HEAD "\thidden = x |> dense(4)\n" NET TAIL, &b));
	/* a tab before the name is kept, so the caret lines up */
	cr_expect_str_eq(b.data, F ":4:2: warning: 'hidden' is never used\n"
				 "    4 | \thidden = x |> dense(4)\n"
				 "      | \t^~~~~~\n");
	nnc_buf_free(&b);
}

Test(diag, colour)
{
	nnc_buf b = {0};
	nnc_source src = {F, "x = )\n", 6};
	nnc_diag_reset();
	nnc_diag_set_color(1);
	nnc_diag_capture(&b);
	cr_assert_null(nnc_parse(&src));
	nnc_diag_capture(NULL);
	nnc_diag_set_color(0);
	cr_expect_str_eq(b.data, "\033[1m" F ":1:5: \033[1;31merror:\033[0m\033[1m unexpected ')', expected an "
				 "expression\033[0m\n"
				 "    1 | x = )\n"
				 "      |     \033[1;32m^\033[0m\n");
	nnc_buf_free(&b);
}

/* ---- bounded work on huge or hostile programs ----
 * Counted, not timed: each count is a small multiple of the program's size
 * and would be its square if a lookup or a rescan went linear again. */

/* A program of `n` lines from fmt (one %d, the line number), after HEAD. */
static char *lines_program(int n, const char *fmt, const char *tail)
{
	nnc_buf b = {0};
	nnc_buf_puts(&b, HEAD);
	for (int i = 0; i < n; i++)
		nnc_buf_printf(&b, fmt, i, i);
	nnc_buf_puts(&b, tail);
	char *text = nnc_strdup(b.data);
	nnc_buf_free(&b);
	return text;
}

static int count_lines_with(const char *text, const char *part)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, part)); p++)
		n++;
	return n;
}

Test(diag, many_definitions_cost_a_few_compares_each)
{
	enum { N = 20000 };
	char *text = lines_program(N, "v%d = x |> dense(2)\n", "v = v7 + v19999\n" NET TAIL);
	nnc_buf b = {0};
	nnc_work = (nnc_work_counts){0};
	ir_graph *g = check(text, &b);
	cr_assert_not_null(g, "%.2000s", b.data ? b.data : "");
	/* 20,002 definitions and their uses: a linear lookup makes 2e8 */
	cr_expect_lt(nnc_work.name_compares, 4 * N, "%ld name compares", nnc_work.name_compares);
	/* no v%d nor v reaches the loss: 20,001 warnings, each showing its
	 * line without reading the file from the start */
	cr_expect_eq(nnc_diag_warning_count(), N + 1);
	cr_expect_lt(nnc_work.line_scan_bytes, 3 * (long)strlen(text), "%ld bytes scanned for %zu",
		     nnc_work.line_scan_bytes, strlen(text));
	nnc_buf_free(&b);
}

Test(diag, many_unknown_names_stop_after_twenty_errors)
{
	enum { N = 20000 };
	char *text = lines_program(N, "v%d = w%d |> relu\n", NET TAIL);
	nnc_buf b = {0};
	nnc_work = (nnc_work_counts){0};
	size_t arena0 = nnc_arena_bytes();
	cr_assert_null(check(text, &b));
	const char *out = b.data ? b.data : "";
	cr_expect_eq(count_lines_with(out, ": error: "), NNC_MAX_ERRORS + 1, "%s", out);
	cr_expect(sh_has_line(out, "nnc: error: " F ": too many errors; stopping after the first 20"), "%s", out);
	cr_expect(strstr(out, "unknown name 'w20'") == NULL, "%s", out);
	/* hints for the errors shown only, each among a bounded set of names;
	 * copying every name for every hint took 1.6 GB */
	cr_expect_leq(nnc_work.suggest_compares, NNC_MAX_ERRORS * (4096 + 16), "%ld", nnc_work.suggest_compares);
	cr_expect_lt(nnc_arena_bytes() - arena0, (size_t)N * 1024, "%zu bytes", nnc_arena_bytes() - arena0);
	nnc_buf_free(&b);
}

Test(diag, many_syntax_errors_stop_after_twenty)
{
	char *text = lines_program(500, "v%d = ) %d\n", TAIL);
	nnc_buf b = {0};
	cr_assert_null(check(text, &b));
	const char *out = b.data ? b.data : "";
	cr_expect_eq(count_lines_with(out, ": error: "), NNC_MAX_ERRORS + 1, "%s", out);
	cr_expect(sh_has_line(out, "nnc: error: " F ": too many errors; stopping after the first 20"), "%s", out);
	nnc_buf_free(&b);
}

/* The passes between the checks and code generation visit each node a few
 * times: fusion asked every node for its users by scanning the graph, and
 * the memory plan sorted every live tensor for each new one. */
Test(diag, long_chains_cost_the_passes_a_few_steps_per_node)
{
	static const char *const shapes[] = {"v%d = v%d |> dense(4) |> relu\n", "v%d = v%d |> tanh\n"};
	for (size_t k = 0; k < NELEMS(shapes); k++) {
		nnc_buf b = {0};
		nnc_buf_puts(&b, HEAD "v0 = x |> dense(4)\n");
		for (int i = 1; i <= 5000; i++)
			nnc_buf_printf(&b, shapes[k], i, i - 1);
		nnc_buf_puts(&b, "logits = v5000 |> dense(2)\n" TAIL);
		nnc_buf d = {0};
		ir_graph *g = check(b.data, &d);
		cr_assert_not_null(g, "%.2000s", d.data ? d.data : "");
		nnc_work = (nnc_work_counts){0};
		nnc_autodiff(g, &check_cfg.opt);
		nnc_add_inference_tail(g);
		nnc_fuse(g);
		g->chunks = 2;
		nnc_plan(g);
		cr_expect_lt(nnc_work.graph_steps, 4L * g->n, "[%s] %ld steps for %d nodes", shapes[k],
			     nnc_work.graph_steps, g->n);
		nnc_buf_free(&b);
		nnc_buf_free(&d);
	}
}

/* A line of a megabyte is shown as a window around the caret. */
Test(diag, a_long_line_is_shown_around_the_caret)
{
	nnc_buf src = {0};
	nnc_buf_puts(&src, HEAD "h = x");
	for (int i = 0; i < 100000; i++)
		nnc_buf_puts(&src, " + x");
	nnc_buf_puts(&src, " $\n" NET TAIL);
	nnc_buf b = {0};
	cr_assert_null(check(src.data, &b));
	const char *out = b.data ? b.data : "";
	cr_expect(strncmp(out, F ":4:400007: error: unexpected character '$'\n", 45) == 0, "%.300s", out);
	cr_expect_lt(strlen(out), 1000, "%zu bytes of output", strlen(out));
	char shown[1024], caret[1024];
	cr_assert(sh_nth_line(out, 1, shown, sizeof shown) && sh_nth_line(out, 2, caret, sizeof caret));
	cr_expect(strstr(shown, "    4 | ...") == shown && strstr(shown, "x $") != NULL, "%s", shown);
	/* the window stops at the end of the line, not WINDOW_AFTER bytes past
	 * the caret (it showed the next lines as \x0a..., and read past the
	 * end of a file ending there: found by fuzz_frontend) */
	size_t len = strlen(shown);
	cr_expect(len >= 3 && !strcmp(shown + len - 3, "x $"), "%s", shown);
	/* the caret is under the '$' */
	cr_expect_eq(strchr(caret, '^') - caret, strstr(shown, "$") - shown, "%s\n%s", shown, caret);
	nnc_buf_free(&src);
	nnc_buf_free(&b);
}

/* A cut line whose window start walks back over continuation bytes (here
 * stray 0xbe bytes) to stay on a character boundary: the window's end was
 * then put WINDOW_AFTER bytes past the caret, beyond the end of the line,
 * showing the next lines or memory past the end of a file that ends there
 * (found by fuzz_frontend; the input is its finding). */
Test(diag, a_window_ends_with_its_line)
{
	FILE *f = fopen(NNC_SOURCE_DIR "/tests/fuzz/corpus_frontend/regress-long-line-caret-at-end", "rb");
	cr_assert(f);
	char text[1024];
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = 0;
	nnc_buf b = {0};
	cr_assert_null(check(text, &b));
	const char *out = b.data ? b.data : "";
	cr_expect(strstr(out, ":3:271: error: unexpected ':'") != NULL, "%s", out);
	char shown[4096];
	cr_assert(sh_nth_line(out, 4, shown, sizeof shown), "%s", out);
	size_t len = strlen(shown);
	cr_expect(strstr(shown, "    3 | ...") == shown && len >= 4 && !strcmp(shown + len - 4, "2) }"), "%s", shown);
	nnc_buf_free(&b);
}

/* ---- the nnc command ---- */

static char tmpdir[64];

static void setup(void) { sh_mktemp(tmpdir, sizeof tmpdir, "diag"); }
static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

/* sh_run, its output kept in the arena (the checks below read it freely). */
static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...)
{
	char *text;
	va_list ap;
	va_start(ap, fmt);
	int rc = sh_vrun(&text, fmt, ap);
	va_end(ap);
	*out = nnc_strdup(text);
	free(text);
	return rc;
}

static const char *write_nn(const char *name, const char *text)
{
	const char *path = nnc_sprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

TestSuite(driver, .init = setup, .fini = teardown);

/* --stats says which tensors weight decay applies to: the weights, not
 * the biases unless decay_biases; nothing without a decay. */
Test(driver, stats_name_the_decayed_tensors)
{
	char *out;
	const char *wd = write_nn("wd.nn", HEAD NET LOSS "optimizer adamw(weight_decay: 0.05)\n" TRAIN);
	cr_assert_eq(run(&out, "'%s' '%s' --stats", NNC_EXE, wd), 0, "%s", out);
	cr_expect(strstr(out, "dense1.weight            [2, 8]         16  weight decay\n") &&
			  strstr(out, "dense1.bias              [8]            8\n") &&
			  strstr(out, "dense2.weight            [8, 2]         16  weight decay\n"),
		  "%s", out);
	const char *all = write_nn("all.nn", HEAD NET LOSS "optimizer sgd(weight_decay: 0.05, decay_biases: true)\n" TRAIN);
	cr_assert_eq(run(&out, "'%s' '%s' --stats", NNC_EXE, all), 0, "%s", out);
	cr_expect(strstr(out, "dense1.bias              [8]            8  weight decay\n"), "%s", out);
	const char *none = write_nn("none.nn", HEAD NET LOSS "optimizer sgd(decay_biases: true)\n" TRAIN);
	cr_assert_eq(run(&out, "'%s' '%s' --stats", NNC_EXE, none), 0, "%s", out);
	cr_expect(!strstr(out, "weight decay"), "%s", out);
}

/* 0 success (warnings included), 1 an error in the input, 2 a bad command line. */
Test(driver, exit_statuses)
{
	char *out;
	const char *good = write_nn("good.nn", HEAD NET TAIL);
	const char *warn = write_nn("warn.nn", HEAD "h = x |> dense(4)\n" NET TAIL);
	const char *bad = write_nn("bad.nn", HEAD "logits = x |> dense(2) |> rellu\n" TAIL);
	const char *syntax = write_nn("syntax.nn", HEAD "logits = x |> dense(2\n" TAIL);
	cr_expect_eq(run(&out, "'%s' '%s' --stats", NNC_EXE, good), 0, "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s' --stats", NNC_EXE, warn), 0, "%s", out);
	cr_expect(strstr(out, "warn.nn:4:1: warning: 'h' is never used\n"), "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s' --stats", NNC_EXE, bad), 1, "%s", out);
	cr_expect(strstr(out, "bad.nn:4:27: error: unknown layer or function 'rellu'\n"), "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s'", NNC_EXE, syntax), 1, "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s/missing.nn'", NNC_EXE, tmpdir), 1, "%s", out);
	cr_expect(strstr(out, "missing.nn: No such file or directory"), "the path is not named:\n%s", out);
	cr_expect_eq(run(&out, "'%s' '%s' --frobnicate", NNC_EXE, good), 2, "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s' --color=sometimes", NNC_EXE, good), 2, "%s", out);
	cr_expect_eq(run(&out, "'%s'", NNC_EXE), 2, "%s", out);
	/* a binary file is an input error, not a crash */
	const char *bin = nnc_sprintf("%s/bin.nn", tmpdir);
	FILE *f = fopen(bin, "wb");
	fwrite("model m\n\0\x01\x02", 1, 11, f);
	fclose(f);
	cr_expect_eq(run(&out, "'%s' '%s'", NNC_EXE, bin), 1, "%s", out);
}

/* What is not a .nn file is refused, naming it, without reading it all. */
Test(driver, sources_that_are_not_programs)
{
	char *out;
	cr_expect_eq(run(&out, "'%s' '%s'", NNC_EXE, tmpdir), 1, "%s", out);
	cr_expect(strstr(out, nnc_sprintf("cannot read %s: Is a directory", tmpdir)), "%s", out);
	/* a device would be read until memory runs out: give it 4 GB (not
	 * under AddressSanitizer, which reserves terabytes of address space) */
	cr_expect_eq(run(&out, "ldd '%s' | grep -q libasan || ulimit -v 4000000; timeout 60 '%s' /dev/zero", NNC_EXE,
			 NNC_EXE),
		     1, "%s", out);
	cr_expect(strstr(out, "cannot read /dev/zero: File too large"), "%s", out);
	/* the limit is 16 MiB; a sparse file costs no disk */
	const char *big = nnc_sprintf("%s/big.nn", tmpdir);
	cr_assert_eq(run(&out, "truncate -s %ld '%s'", NNC_MAX_SOURCE + 1, big), 0, "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s'", NNC_EXE, big), 1, "%s", out);
	cr_expect(strstr(out, "big.nn: File too large"), "%s", out);
	cr_assert_eq(run(&out, "truncate -s %ld '%s'", NNC_MAX_SOURCE, big), 0, "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s'", NNC_EXE, big), 1, "%s", out);
	cr_expect(strstr(out, "NUL byte"), "a file of exactly the limit is read:\n%s", out);
}

/* Line ends of other systems compile like LF ones. */
Test(driver, cr_and_crlf_line_ends)
{
	char *out;
	const char *cr = write_nn("cr.nn", "model m\rinput x : f32[2]\rlabel y : class(2)\r"
				       "logits = x |> dense(8)\r  |> relu |> dense(2)\r" TAIL);
	const char *crlf = write_nn("crlf.nn", "model m\r\ninput x : f32[2]\r\nlabel y : class(2)\r\n"
					   "logits = x |> dense(8) |> relu\r\n\r\n  |> dense(2)\r\n" TAIL);
	cr_expect_eq(run(&out, "'%s' '%s' --stats", NNC_EXE, cr), 0, "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s' --stats", NNC_EXE, crlf), 0, "%s", out);
}

Test(driver, color_and_no_color)
{
	char *out;
	const char *bad = write_nn("bad.nn", HEAD "logits = x |> dense(2) |> rellu\n" TAIL);
	cr_expect_eq(run(&out, "'%s' '%s' --color=always", NNC_EXE, bad), 1);
	cr_expect(strstr(out, "\033[1;31merror:") != NULL, "no colour with --color=always:\n%s", out);
	/* an explicit --color=always wins over NO_COLOR */
	cr_expect_eq(run(&out, "NO_COLOR=1 '%s' '%s' --color=always", NNC_EXE, bad), 1);
	cr_expect(strstr(out, "\033[") != NULL, "%s", out);
	cr_expect_eq(run(&out, "'%s' '%s' --color=never", NNC_EXE, bad), 1);
	cr_expect(strstr(out, "\033[") == NULL, "colour with --color=never:\n%s", out);
	/* auto: colour only on a terminal and without NO_COLOR; `script` gives
	 * the command a terminal where it is installed */
	cr_expect_eq(run(&out, "NO_COLOR=1 '%s' '%s'", NNC_EXE, bad), 1);
	cr_expect(strstr(out, "\033[") == NULL, "colour into a pipe:\n%s", out);
	if (run(&out, "command -v script") == 0) {
		run(&out, "script -qec \"'%s' '%s'\" /dev/null", NNC_EXE, bad);
		cr_expect(strstr(out, "\033[1;31merror:") != NULL, "no colour on a terminal:\n%s", out);
		run(&out, "NO_COLOR=1 script -qec \"'%s' '%s'\" /dev/null", NNC_EXE, bad);
		cr_expect(strstr(out, "\033[") == NULL, "colour on a terminal despite NO_COLOR:\n%s", out);
	}
}
