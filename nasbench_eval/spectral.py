"""Spectral norms and stable ranks of convolution operators (MSR-DARTS's maths).

A 2-D convolution with a fixed input size is a linear map from ``C_in x H x W`` to
``C_out x H' x W'``; this module measures that map, not the kernel tensor.

Singular values (Sedghi, Gupta & Long, ICLR 2019). For a *circular* stride-1 convolution the
operator is block-circulant: the 2-D DFT diagonalises it into one ``C_out x C_in`` matrix per
frequency, ``M(f) = FFT2(kernel zero-padded to H x W)[:, :, f]``, and the singular values of the
operator are those of all ``H * W`` matrices together. Zero-padded ("same") convolutions, which
networks use, differ from the circular ones only at the border; the formula is exact for the
circular operator, which is what it is tested against. Extensions used here:

* dilation: the kernel is expanded with zeros between its taps;
* groups (depthwise convs): the operator is block-diagonal over groups, so each group is
  handled on its own (a depthwise conv gives per-frequency diagonal matrices, i.e. ``1 x 1``
  blocks whose singular value is ``|FFT|``);
* stride ``s``: a polyphase rearrangement turns a stride-``s`` circular conv on ``H x W`` into a
  stride-1 circular conv on ``H/s x W/s`` with ``C_in * s^2`` input channels
  (input phase ``q`` meets kernel taps ``s*m + q``), so the same formula applies; ``H`` and
  ``W`` must be multiples of ``s``.

Stable rank: ``sum(sigma_i^2) / max(sigma_i)^2`` (scale invariant). For a ``1 x 1`` stride-1
kernel the DFT is the same matrix ``W`` (``C_out x C_in``) at every frequency, so the operator
has each singular value of ``W`` repeated ``H * W`` times: the numerator is multiplied by
``H * W`` and the maximum is unchanged, hence

    stable_rank_operator(1x1 kernel, H, W) == H * W * stable_rank_matrix(W).

:func:`conv_stable_rank` uses that cheap form for ``1 x 1`` convs.

Spectral normalisation: :class:`ConvSpectralNorm` is a ``torch.nn.utils.parametrize``
parametrization that divides a conv's weight by ``sigma / coeff`` before every forward
(always, not only when ``sigma > coeff``), ``sigma`` being the operator norm on the input
shape the conv really receives, estimated by power iteration with persistent vectors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

Pair = tuple[int, int]


def _pair(x: int | tuple[int, ...]) -> Pair:
    if isinstance(x, int):
        return (x, x)
    a, b = x
    return (int(a), int(b))


# --------------------------------------------------------------------------- kernel layout

def dilate_kernel(kernel: Tensor, dilation: int | Pair = 1) -> Tensor:
    """``(..., kh, kw)`` -> ``(..., d(kh-1)+1, d(kw-1)+1)`` with zeros between the taps."""
    dh, dw = _pair(dilation)
    if dh == 1 and dw == 1:
        return kernel
    kh, kw = kernel.shape[-2:]
    out = kernel.new_zeros(*kernel.shape[:-2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[..., ::dh, ::dw] = kernel
    return out


def group_kernels(kernel: Tensor, groups: int = 1) -> Tensor:
    """Conv weight ``(C_out, C_in/g, kh, kw)`` -> ``(g, C_out/g, C_in/g, kh, kw)``: the
    operator of a grouped conv is block-diagonal, one block per group."""
    c_out = kernel.shape[0]
    if c_out % groups:
        raise ValueError(f"{c_out} output channels do not split into {groups} groups")
    return kernel.reshape(groups, c_out // groups, *kernel.shape[1:])


def polyphase_kernel(kernel: Tensor, stride: int | Pair = 1) -> Tensor:
    """Rearrange ``(..., C_out, C_in, kh, kw)`` for a stride-``s`` conv into the stride-1
    kernel ``(..., C_out, C_in*sh*sw, ceil(kh/sh), ceil(kw/sw))`` acting on the polyphase
    components ``x_q[n] = x[s*n + q]`` of the input (channel order: c, qh, qw)."""
    sh, sw = _pair(stride)
    if sh == 1 and sw == 1:
        return kernel
    kh, kw = kernel.shape[-2:]
    mh, mw = -(-kh // sh), -(-kw // sw)
    k = F.pad(kernel, (0, mw * sw - kw, 0, mh * sh - kh))
    lead, (c_out, c_in) = k.shape[:-4], k.shape[-4:-2]
    k = k.reshape(*lead, c_out, c_in, mh, sh, mw, sw)  # tap a = m*s + q -> (m, q)
    n = k.dim()
    # (..., c_out, c_in, mh, qh, mw, qw) -> (..., c_out, c_in, qh, qw, mh, mw)
    k = k.permute(*range(n - 6), n - 6, n - 5, n - 3, n - 1, n - 4, n - 2)
    return k.reshape(*lead, c_out, c_in * sh * sw, mh, mw)


def circular_embed(kernel: Tensor, h: int, w: int) -> Tensor:
    """Place ``(..., kh, kw)`` on an ``h x w`` torus (taps beyond the grid wrap and add up)."""
    kh, kw = kernel.shape[-2:]
    if kh <= h and kw <= w:
        return F.pad(kernel, (0, w - kw, 0, h - kh))
    idx_h = torch.arange(kh, device=kernel.device) % h
    idx_w = torch.arange(kw, device=kernel.device) % w
    out = kernel.new_zeros(*kernel.shape[:-2], h, kw).index_add_(kernel.dim() - 2, idx_h, kernel)
    return kernel.new_zeros(*kernel.shape[:-2], h, w).index_add_(kernel.dim() - 1, idx_w, out)


# --------------------------------------------------------------------------- singular values

def operator_singular_values(kernel: Tensor, H: int, W: int, stride: int | Pair = 1,
                             dilation: int | Pair = 1, groups: int = 1) -> Tensor:
    """All singular values of the circular convolution ``kernel`` on a ``C_in x H x W`` input
    (float64, unsorted). Exact for circular padding (Sedghi et al. 2019); see the module
    docstring for dilation, groups and stride."""
    sh, sw = _pair(stride)
    if H % sh or W % sw:
        raise ValueError(f"stride {(sh, sw)} needs H, W divisible by it, got {(H, W)}")
    k = group_kernels(kernel.detach().to(torch.float64), groups)
    k = polyphase_kernel(dilate_kernel(k, dilation), (sh, sw))
    k = circular_embed(k, H // sh, W // sw)
    spectrum = torch.fft.fft2(k)  # (g, c_out/g, c_in', h, w)
    mats = spectrum.permute(0, 3, 4, 1, 2)  # one (c_out/g x c_in') matrix per group, frequency
    return torch.linalg.svdvals(mats).reshape(-1)


def operator_spectral_norm(kernel: Tensor, H: int, W: int, stride: int | Pair = 1,
                           dilation: int | Pair = 1, groups: int = 1) -> float:
    """Exact operator 2-norm of the circular convolution (largest singular value)."""
    return operator_singular_values(kernel, H, W, stride, dilation, groups).max().item()


def stable_rank_from_singular_values(s: Tensor) -> Tensor:
    """``sum(s^2) / max(s)^2``; 0 for an all-zero operator."""
    s = s.to(torch.float64)
    top = s.max()
    return torch.where(top > 0, (s * s).sum() / (top * top).clamp_min(1e-300),
                       torch.zeros((), dtype=s.dtype, device=s.device))


def stable_rank_operator(kernel: Tensor, H: int, W: int, stride: int | Pair = 1,
                         dilation: int | Pair = 1, groups: int = 1) -> Tensor:
    """Stable rank of the convolution operator (circular, Sedghi et al.'s singular values)."""
    return stable_rank_from_singular_values(
        operator_singular_values(kernel, H, W, stride, dilation, groups))


def stable_rank_matrices(mats: Tensor) -> Tensor:
    """Stable rank of each matrix of a batch ``(..., m, n)``: ``||A||_F^2 / ||A||_2^2``."""
    mats = mats.detach().to(torch.float64)
    fro2 = mats.square().sum((-2, -1))
    top = torch.linalg.matrix_norm(mats, ord=2)
    return torch.where(top > 0, fro2 / (top * top).clamp_min(1e-300), torch.zeros_like(fro2))


def stable_rank_matrix(weight: Tensor) -> Tensor:
    """Stable rank of a matrix, or of a conv weight reshaped ``C_out x (C_in*kh*kw)``."""
    return stable_rank_matrices(weight.reshape(weight.shape[0], -1))


def conv_stable_rank(kernel: Tensor, H: int, W: int, stride: int | Pair = 1,
                     padding: int | Pair = 0, dilation: int | Pair = 1, groups: int = 1) -> Tensor:
    """Stable rank of a conv layer's operator on an ``H x W`` input.

    ``1 x 1`` kernels (groups 1) use the matrix form: every output pixel applies the same
    ``C_out x C_in`` matrix to its own input pixel, so the operator's singular values are the
    matrix's repeated once per sampled input pixel (``H * W`` at stride 1), and the stable rank
    is that count times the matrix stable rank (zero-padded border outputs add zero rows).
    Other kernels use :func:`stable_rank_operator` (circular approximation of the border).
    """
    kh, kw = kernel.shape[-2:]
    if kh == 1 and kw == 1 and groups == 1:
        sh, sw = _pair(stride)
        ph, pw = _pair(padding)
        # input pixels some output pixel reads (outputs centred in the padding are zero rows)
        n_h = sum(1 for i in range(-ph, H + ph, sh) if 0 <= i < H)
        n_w = sum(1 for j in range(-pw, W + pw, sw) if 0 <= j < W)
        return n_h * n_w * stable_rank_matrix(kernel)
    return stable_rank_operator(kernel, H, W, stride, dilation, groups)


# --------------------------------------------------------------------------- spectral norm

def _normalize(x: Tensor, eps: float) -> Tensor:
    return x / x.norm().clamp_min(eps)


class ConvSpectralNorm(nn.Module):
    """Parametrization ``W -> W * coeff / sigma(W)`` of one ``nn.Conv2d``'s weight.

    ``sigma`` is the operator norm of the convolution on the input shape it receives
    (learnt by :func:`spectral_normalize_conv`'s forward pre-hook on the first forward):

    * ``1 x 1`` convs (groups 1): the operator norm is the matrix norm of ``W`` reshaped
      ``C_out x C_in``, so power iteration runs on that matrix (the reference's FC-style form);
    * other kernels (depthwise, strided, dilated): power iteration on the operator itself,
      ``v <- A^T u / |.|``, ``u <- A v / |.|``, with ``A = conv2d`` and ``A^T =
      conv_transpose2d`` (``output_padding`` restores the input size a strided conv rounds
      away); ``padding_mode='circular'`` is also supported (pad, conv / conv-transpose, fold).

    Both vectors are *persistent* buffers (kept across calls and saved in ``state_dict``, so a
    resumed search continues them), for every conv including grouped ones; the reference
    re-randomises them on every call for grouped convs, which with a handful of iterations
    gives a much noisier estimate. They are initialised from a generator seeded by ``seed``
    (the global torch RNG is not consumed). In training mode each access of the weight runs
    ``n_power_iterations`` steps first; in eval mode the stored vectors are reused as they are
    (the very first use iterates whatever the mode). ``sigma = u . A(W) v`` carries the
    gradient to ``W`` like ``torch.nn.utils.spectral_norm``.
    """

    def __init__(self, conv: nn.Conv2d, coeff: float = 1.0, n_power_iterations: int = 5,
                 seed: int = 0, eps: float = 1e-12):
        super().__init__()
        if isinstance(conv.padding, str):
            raise ValueError(f"string padding {conv.padding!r} is not supported; give integers")
        if conv.padding_mode not in ("zeros", "circular"):
            raise ValueError(f"padding_mode {conv.padding_mode!r} is not supported "
                             "(zeros or circular)")
        self.coeff = float(coeff)
        self.n_power_iterations = int(n_power_iterations)
        self.seed = int(seed)
        self.eps = eps
        self.stride = _pair(conv.stride)
        self.padding = _pair(conv.padding)
        self.dilation = _pair(conv.dilation)
        self.groups = conv.groups
        self.padding_mode = conv.padding_mode
        self.kernel_size = _pair(conv.kernel_size)
        self.matrix_form = self.kernel_size == (1, 1) and conv.groups == 1
        w = conv.weight
        self.register_buffer("u", w.new_empty(0))
        self.register_buffer("v", w.new_empty(0))
        self.register_buffer("input_hw", torch.zeros(2, dtype=torch.long, device=w.device))
        self._hw: Pair | None = None
        self._fresh = True
        if self.matrix_form:  # the vectors do not depend on the input size
            self._init_vectors((w[0].numel(),), w.detach())

    # ----------------------------------------------------------------- the operator
    def apply_operator(self, x: Tensor, weight: Tensor) -> Tensor:
        """``A x``: the convolution (as the layer computes it, without bias)."""
        if self.matrix_form:
            return weight.reshape(weight.shape[0], -1) @ x
        if self.padding_mode == "circular":
            ph, pw = self.padding
            x = F.pad(x, (pw, pw, ph, ph), mode="circular")
            return F.conv2d(x, weight, None, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, self.groups)

    def apply_adjoint(self, y: Tensor, weight: Tensor) -> Tensor:
        """``A^T y``, back on the input shape."""
        if self.matrix_form:
            return weight.reshape(weight.shape[0], -1).t() @ y
        H, W = self._hw  # type: ignore[misc]
        kh, kw = self.kernel_size
        (sh, sw), (dh, dw) = self.stride, self.dilation
        circular = self.padding_mode == "circular"
        ph, pw = self.padding
        pad_h, pad_w = (0, 0) if circular else (ph, pw)
        th, tw = (H + 2 * ph, W + 2 * pw) if circular else (H, W)
        oh, ow = y.shape[-2:]
        # conv_transpose2d returns (o-1)*s - 2p + d(k-1) + 1 + output_padding rows
        out_pad = (th - ((oh - 1) * sh - 2 * pad_h + dh * (kh - 1) + 1),
                   tw - ((ow - 1) * sw - 2 * pad_w + dw * (kw - 1) + 1))
        x = F.conv_transpose2d(y, weight, None, self.stride, (pad_h, pad_w), out_pad,
                               self.groups, self.dilation)
        if circular:  # adjoint of circular padding: fold the wrapped border back
            idx_h = (torch.arange(th, device=x.device) - ph) % H
            idx_w = (torch.arange(tw, device=x.device) - pw) % W
            x = x.new_zeros(*x.shape[:2], H, tw).index_add_(2, idx_h, x)
            x = x.new_zeros(*x.shape[:2], H, W).index_add_(3, idx_w, x)
        return x

    # ----------------------------------------------------------------- state
    def _init_vectors(self, shape: tuple[int, ...], weight: Tensor) -> None:
        with torch.no_grad():
            g = torch.Generator().manual_seed(self.seed)
            v = torch.randn(shape, generator=g, dtype=torch.float64)
            v = _normalize(v.to(device=weight.device, dtype=weight.dtype), self.eps)
            u = _normalize(self.apply_operator(v, weight), self.eps)
        self.v, self.u = v, u  # buffers: assignment replaces them (their shape may change)
        self._fresh = True

    def observe_input(self, x: Tensor, weight: Tensor) -> None:
        """Record the input shape; (re)initialise the vectors when it is new (host-side
        shape checks only, no device sync)."""
        c, H, W = x.shape[-3:]
        if self._hw != (H, W):
            self._hw = (H, W)
            with torch.no_grad():
                self.input_hw.copy_(torch.tensor([H, W]))
        if not self.matrix_form and tuple(self.v.shape) != (1, c, H, W):
            self._init_vectors((1, c, H, W), weight.detach())

    @property
    def input_size(self) -> Pair | None:
        """The ``(H, W)`` of the input this conv receives; None before its first forward."""
        return self._hw

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # the vectors' shapes depend on the input seen: take the saved ones as they are
        for name in ("u", "v"):
            key = prefix + name
            if key in state_dict:
                old, saved = getattr(self, name), state_dict[key]
                # same shape *and strides* as saved (a channels_last vector must stay one, or
                # the resumed convolutions round differently from the uninterrupted run)
                setattr(self, name, torch.empty_like(saved, dtype=old.dtype, device=old.device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        key = prefix + "input_hw"
        if key in state_dict:
            h, w = (int(t) for t in state_dict[key].tolist())
            self._hw = (h, w) if h > 0 else None
            self._fresh = self.v.numel() == 0

    # ----------------------------------------------------------------- parametrization
    def sigma(self, weight: Tensor) -> Tensor:
        """Current estimate ``u . A(weight) v`` (differentiable in ``weight``)."""
        return (self.u.clone() * self.apply_operator(self.v.clone(), weight)).sum()

    def power_iterate(self, weight: Tensor, n: int) -> None:
        with torch.no_grad():
            u, v = self.u, self.v
            for _ in range(n):
                v = _normalize(self.apply_adjoint(u, weight), self.eps)
                u = _normalize(self.apply_operator(v, weight), self.eps)
            self.u.copy_(u)
            self.v.copy_(v)

    def forward(self, weight: Tensor) -> Tensor:
        if self.v.numel() == 0:
            raise RuntimeError("ConvSpectralNorm: the input shape is unknown; the conv must "
                               "run a forward (with the pre-hook) before its weight is read")
        if self.training or self._fresh:
            self.power_iterate(weight, max(self.n_power_iterations, 1) if self._fresh
                               else self.n_power_iterations)
            self._fresh = False
        elif not torch.is_grad_enabled():
            # evaluation: nothing changes between forwards until the weight or the vectors are
            # written again (optimizer step, training forward, load), which bumps a version
            key = (weight.data_ptr(), weight._version, self.u._version, self.v._version,
                   self.coeff)
            cached = self.__dict__.get("_eval_cache")
            if cached is not None and cached[0] == key:
                return cached[1]
            out = weight * (self.coeff / self.sigma(weight).clamp_min(self.eps))
            self.__dict__["_eval_cache"] = (key, out)
            return out
        return weight * (self.coeff / self.sigma(weight).clamp_min(self.eps))


def _observe_input_hook(module: nn.Module, args: tuple) -> None:
    module.parametrizations["weight"][0].observe_input(
        args[0], module.parametrizations["weight"].original)


def spectral_normalize_conv(conv: nn.Conv2d, coeff: float = 1.0, n_power_iterations: int = 5,
                            seed: int = 0) -> ConvSpectralNorm:
    """Make ``conv`` use ``W * coeff / sigma(W)`` in every forward; returns the parametrization
    (its buffers ``u``, ``v``, ``input_hw`` join ``conv.state_dict()``)."""
    sn = ConvSpectralNorm(conv, coeff, n_power_iterations, seed)
    # unsafe: the consistency check would evaluate the parametrization before any input
    # (kxk convs do not know their operator yet); the output has the weight's shape and dtype
    parametrize.register_parametrization(conv, "weight", sn, unsafe=True)
    conv.register_forward_pre_hook(_observe_input_hook)
    return sn


def spectral_norm_of(conv: nn.Module) -> ConvSpectralNorm | None:
    """The :class:`ConvSpectralNorm` of a conv, or None."""
    if not parametrize.is_parametrized(conv, "weight"):
        return None
    for p in conv.parametrizations["weight"]:
        if isinstance(p, ConvSpectralNorm):
            return p
    return None


def raw_weight(conv: nn.Module) -> Tensor:
    """The conv's trained weight before any parametrization."""
    if parametrize.is_parametrized(conv, "weight"):
        return conv.parametrizations["weight"].original
    return conv.weight


__all__ = ["ConvSpectralNorm", "circular_embed", "conv_stable_rank", "dilate_kernel",
           "group_kernels", "operator_singular_values", "operator_spectral_norm",
           "polyphase_kernel", "raw_weight", "spectral_norm_of", "spectral_normalize_conv",
           "stable_rank_from_singular_values", "stable_rank_matrices", "stable_rank_matrix",
           "stable_rank_operator"]
