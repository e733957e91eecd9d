from collections.abc import Callable

from torch import Tensor, nn

INTERFACE_VERSION: int

def norms(
    params: tuple[nn.Parameter, ...],
    to_dlpack: Callable[[Tensor], object],
    tensor_type: type[Tensor],
) -> list[float] | None: ...
def vector_loop(enable: bool = ..., /) -> bool: ...
