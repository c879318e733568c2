"""Running a compiled function's gradient where the data is: Dask arrays, chunked along the batch axis."""
