// Minimal stand-in for ankerl::unordered_dense (https://github.com/martinus/unordered_dense),
// which Debian 12 does not package. It covers only what the mediasoup worker
// uses: ankerl::unordered_dense::{map, set, hash}.
//
// map/set are the standard containers under another name. Differences from
// the real library that the worker does not depend on:
//   - iteration order is hash order, not insertion order (only the order of
//     entries in dumps/stats can differ);
//   - references stay valid across inserts (the real one is vector backed,
//     so worker code never relies on that either way);
//   - value_type is std::pair<const Key, T> instead of std::pair<Key, T>.
//
// hash<T> mixes integers, enums and pointers with the same 64x64->128 bit
// multiply-fold as the real library (the worker feeds these hashes into a
// boost-style hash_combine, which wants well-spread input); everything else
// uses std::hash.

#ifndef CONSENTRY_ANKERL_UNORDERED_DENSE_SHIM_H
#define CONSENTRY_ANKERL_UNORDERED_DENSE_SHIM_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

namespace ankerl::unordered_dense
{
	namespace detail
	{
		inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) noexcept
		{
			const auto r = static_cast<unsigned __int128>(a) * b;

			return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64U);
		}
	} // namespace detail

	template<class T, class Enable = void>
	struct hash : std::hash<T>
	{
	};

	template<class T>
	struct hash<T, std::enable_if_t<std::is_integral_v<T> || std::is_enum_v<T>>>
	{
		std::uint64_t operator()(const T& value) const noexcept
		{
			return detail::mix(
			  static_cast<std::uint64_t>(value), UINT64_C(0x9E3779B97F4A7C15));
		}
	};

	template<class T>
	struct hash<T*>
	{
		std::uint64_t operator()(T* ptr) const noexcept
		{
			return detail::mix(
			  static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(ptr)),
			  UINT64_C(0x9E3779B97F4A7C15));
		}
	};

	template<class Key, class T, class Hash = hash<Key>, class KeyEqual = std::equal_to<Key>>
	using map = std::unordered_map<Key, T, Hash, KeyEqual>;

	template<class Key, class Hash = hash<Key>, class KeyEqual = std::equal_to<Key>>
	using set = std::unordered_set<Key, Hash, KeyEqual>;
} // namespace ankerl::unordered_dense

#endif
