"""Physics kernels: one op per module, each with a torch reference and a device-dispatching
public function. Importing this package touches no GPU."""
