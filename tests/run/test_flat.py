"""gatejax.run.flat: a carry as one real vector, complex leaves as (Re, Im), against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np

from gatejax.run import flat


def carry():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(2, 3)) + 1j * rng.normal(size=(2, 3))
  return {
    "h": jnp.asarray(rng.normal(size=(2, 4)), jnp.float32),
    "z": jnp.asarray(z, jnp.complex64),
  }


def test_flatten_lays_out_real_then_imaginary_parts_and_inverts():
  c = carry()
  vec = flat.flatten(c, 1)
  z = np.asarray(c["z"])
  want = np.concatenate([np.asarray(c["h"]), z.real, z.imag], axis=1)
  assert vec.dtype == jnp.float32 and vec.shape == (2, 10)
  np.testing.assert_array_equal(vec, want)
  template, n = flat.per_sequence(c, 1)
  assert n == 10 == flat.size(template)
  back = jax.vmap(flat.unflattener(template))(vec)
  assert back["z"].dtype == jnp.complex64
  jax.tree.map(np.testing.assert_array_equal, back, c)
  jax.tree.map(np.testing.assert_array_equal, flat.from_real(flat.to_real(c), c), c)


def test_the_real_jacobian_of_a_complex_product_is_a_scaled_rotation():
  lam = 0.9 * np.exp(0.3j)
  template = jnp.zeros((1,), jnp.complex64)
  unravel = flat.unflattener(template)
  f = lambda v: flat.flatten(jnp.complex64(lam) * unravel(v), 0)
  J = np.asarray(jax.jacfwd(f)(jnp.array([0.2, -0.4])))
  want = np.array([[lam.real, -lam.imag], [lam.imag, lam.real]])
  np.testing.assert_allclose(J, want, rtol=1e-6)
  assert np.allclose(np.abs(np.linalg.eigvals(J)), abs(lam))


def test_work_dtype_lifts_half_precision_only():
  assert flat.work_dtype(jnp.bfloat16) == jnp.float32
  assert flat.work_dtype(jnp.float32) == jnp.float32
  assert flat.work_dtype(jnp.float64) == jnp.float64
