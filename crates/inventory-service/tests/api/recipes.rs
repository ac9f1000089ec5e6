//! Recipes for the items the menus have, and the portions their stock allows.

use crate::helpers::*;
use events::MenuItemId;
use serde_json::{Value, json};

#[tokio::test]
async fn a_recipe_tracks_an_item_and_the_item_sells_out_and_comes_back_with_its_stock() -> TestResult {
    let app = spawn_app().await?;
    let [risotto, salad] = app.menu_with(&["Risotto", "Salad"]).await?[..] else { anyhow::bail!("two items") };
    let rice = app.ingredient("Rice", "g", 0).await?;
    let stock = app.ingredient("Stock", "ml", 0).await?;

    let set = app.recipe(risotto, &[(&rice["id"], 80), (&stock["id"], 250)]).await?;
    assert_eq!(set["lines"].as_array().map(Vec::len), Some(2));
    assert_eq!(app.get_json(&format!("/api/v1/recipes/{risotto}")).await?, set);
    assert_eq!(app.portions_left(risotto).await?, 0);
    let untracked = app.get(&format!("/api/v1/recipes/{salad}")).await?;
    assert_eq!(untracked.status(), 404, "an item without a recipe is not tracked");

    app.receive(&rice["id"], 250).await?;
    app.receive(&stock["id"], 1000).await?;
    assert_eq!(app.portions_left(risotto).await?, 3, "⌊250/80⌋ = 3 beats ⌊1000/250⌋ = 4");

    // Its three events, the last published after the receipts' own.
    let entries = app.events_about(&risotto.to_string(), 3).await?;
    let about_risotto: Vec<&str> = entries.iter().map(|entry| entry.event_type.as_str()).collect();
    assert_eq!(about_risotto, ["RecipeSet", "MenuItemSoldOut", "MenuItemBackInStock"]);
    let back = entries.iter().find(|entry| entry.event_type == "MenuItemBackInStock");
    assert_eq!(back.map(|entry| entry.data["portions_left"].clone()), Some(json!(3)));
    let page = app.get_json("/api/v1/portions").await?;
    assert_eq!(page["portions"].as_array().map(Vec::len), Some(1), "only tracked items: {page}");
    assert_eq!(page["portions"][0]["name"], "Risotto");
    Ok(())
}

#[tokio::test]
async fn a_recipe_for_an_item_no_menu_has_or_with_bad_lines_is_refused() -> TestResult {
    let app = spawn_app().await?;
    let [soup] = app.menu_with(&["Soup"]).await?[..] else { anyhow::bail!("one item") };
    let leek = app.ingredient("Leek", "g", 0).await?;
    let leek_id = text(&leek["id"]);
    let unknown_item = MenuItemId::new();
    let cases = [
        (unknown_item, json!({"lines": [{"ingredient_id": leek_id, "quantity": 10}]}), "menu_item_id"),
        (soup, json!({"lines": []}), "lines"),
        (soup, json!({"lines": [{"ingredient_id": leek_id, "quantity": 0}]}), "lines"),
        (
            soup,
            json!({"lines": [{"ingredient_id": leek_id, "quantity": 1}, {"ingredient_id": leek_id, "quantity": 2}]}),
            "lines",
        ),
        (soup, json!({"lines": [{"ingredient_id": uuid::Uuid::now_v7(), "quantity": 1}]}), "lines"),
    ];
    for (item, body, field) in cases {
        let response = app.put(&format!("/api/v1/recipes/{item}"), &body).await?;
        assert_eq!(response.status(), 422, "{body}");
        let problem: Value = response.json().await?;
        assert_eq!(problem["field"], field, "{problem}");
    }
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&app.db.pool).await?;
    assert_eq!((app.events(1).await?.len(), unpublished), (1, 0), "only the ingredient was published");
    assert_eq!(app.get(&format!("/api/v1/recipes/{soup}")).await?.status(), 404);
    Ok(())
}

#[tokio::test]
async fn a_recipe_changed_from_a_stale_version_is_a_conflict() -> TestResult {
    let app = spawn_app().await?;
    let [bread] = app.menu_with(&["Bread"]).await?[..] else { anyhow::bail!("one item") };
    let flour = app.ingredient("Flour", "g", 0).await?;
    app.receive(&flour["id"], 1000).await?;
    let set = app.recipe(bread, &[(&flour["id"], 500)]).await?;
    let version = set["version"].as_i64().unwrap_or_default();
    let body = json!({"lines": [{"ingredient_id": flour["id"], "quantity": 400}]});
    let stale = app
        .client
        .put(app.url(&format!("/api/v1/recipes/{bread}")))
        .header("if-match", format!("\"{}\"", version + 5))
        .json(&body)
        .send()
        .await?;
    assert_eq!(stale.status(), 409);
    let fresh = app
        .client
        .put(app.url(&format!("/api/v1/recipes/{bread}")))
        .header("if-match", format!("\"{version}\""))
        .json(&body)
        .send()
        .await?;
    assert_eq!(fresh.status(), 200);
    assert_eq!(app.portions_left(bread).await?, 2);
    Ok(())
}
